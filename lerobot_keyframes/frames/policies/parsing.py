"""Policy spec strings (`--keyframes.policy`, `KeyframeTransform(policy=...)`): `"motion+uniform:4@12"`.

Every policy's `spec()` parses back to an equal policy, so a spec is also a stable name of it.
"""

from __future__ import annotations

from dataclasses import fields

from .base import KeyframePolicy, PolicyUnion
from .basic import At, EveryFrame, Fps, Uniform
from .compose import Cap, Turns
from .constructors import MotionOption
from .motion import MOTION_ALIASES, Motion

_USAGE = ("use uniform:N, fps:HZ, at:T1,T2,..., every_frame, motion[:key=value,...], joined with '+', "
          "optionally capped with '@N'")


def _parse_motion(args: str) -> Motion:
    if not args:
        return Motion()
    types = {f.name: str(f.type) for f in fields(Motion)}
    kwargs: dict[str, MotionOption] = {}
    for part in args.split(","):
        key, sep, value = part.partition("=")
        key = MOTION_ALIASES.get(key.strip(), key.strip())
        if not sep or key not in types:
            raise ValueError(
                f"motion: bad option {part!r}; use key=value with keys {sorted(types) + sorted(MOTION_ALIASES)}"
            )
        value = value.strip()
        if key == "arm_indices":
            kwargs[key] = tuple(int(v) for v in value.split("/") if v)
        elif types[key] == "bool":
            kwargs[key] = value.lower() in ("1", "true", "yes", "on")
        elif types[key] == "int":
            kwargs[key] = int(value)
        elif types[key] == "float":
            kwargs[key] = float(value)
        else:
            kwargs[key] = value  # a column name or a Literal option, checked by Motion
    return Motion(**kwargs)  # type: ignore[arg-type]


def _parse_at(args: str) -> At:
    times, tol = [], None
    for part in args.split(","):
        part = part.strip()
        if part.startswith("tolerance="):
            tol = float(part.split("=", 1)[1])
        elif part:
            times.append(float(part))
    return At(tuple(times), tol)


def _parse_term(term: str) -> KeyframePolicy:
    if "~" in term:  # `fps:1~0/2`: turns
        base, _, turn = term.rpartition("~")
        offset, _, step = turn.partition("/")
        try:
            return Turns(_parse_term(base), int(step), int(offset))
        except ValueError as exc:
            raise ValueError(f"keyframe policy {term!r}: {exc}") from exc
    name, _, args = term.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    try:
        if name == "uniform":
            return Uniform(int(args) if args else 8)
        if name == "fps":
            return Fps(float(args) if args else 1.0)
        if name == "at":
            return _parse_at(args)
        if name in ("every_frame", "all", "every"):
            return EveryFrame()
        if name == "motion":
            return _parse_motion(args)
    except ValueError as exc:
        raise ValueError(f"keyframe policy {term!r}: {exc}") from exc
    raise ValueError(f"unknown keyframe policy {term!r}; {_USAGE}")


def parse_policy(spec: str | KeyframePolicy) -> KeyframePolicy:
    """Parse `"uniform:8"`, `"fps:1"`, `"at:0,2.5"`, `"every_frame"`, `"motion"`, `"motion:max=12"`,
    unions `"motion+uniform:4"` and a cap on the whole `"motion+uniform:4@12"`; a policy is returned as is."""
    if isinstance(spec, KeyframePolicy):
        return spec
    text = spec.strip()
    if not text:
        raise ValueError("empty keyframe policy")
    limit = None
    if "@" in text:
        text, _, n = text.rpartition("@")
        try:
            limit = int(n)
        except ValueError as exc:
            raise ValueError(f"keyframe policy {spec!r}: cap after '@' must be an integer, got {n!r}") from exc
    terms = [_parse_term(t) for t in text.split("+")]
    policy: KeyframePolicy = terms[0] if len(terms) == 1 else PolicyUnion(tuple(terms))
    return Cap(policy, limit) if limit is not None else policy
