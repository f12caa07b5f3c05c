"""`python -m lerobot_keyframes.cli ...`: the same as the `lerobot-keyframes` console script."""

from . import main

raise SystemExit(main())
