"""A user's own module (`--modules=pkg.mod:Class`) that misbehaves: it fails its episode, named, like any other
failure (--on_error), never the whole run with a traceback; a module spec that cannot be imported is one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from adversarial_helpers import model_flags, one_error_line, tree_hash

HOSTILE = '''
from dataclasses import dataclass

from lerobot_keyframes.annotate import Module


@dataclass(frozen=True)
class Cfg:
    enabled: bool = True


class _Base(Module):
    styles = frozenset({"plan"})
    config_class = Cfg

    def keyframes(self, episode, config, upstream=None):
        return {}


class Raises(_Base):
    name = "raises"

    async def run(self, ctx, upstream):
        raise RuntimeError("exploded on purpose")


class NotAList(_Base):
    name = "notalist"

    async def run(self, ctx, upstream):
        return "rows"
'''
OFF = ["--plan.enabled=false", "--interjections.enabled=false", "--vqa.enabled=false"]


@pytest.mark.parametrize("cls, says", [("Raises", "RuntimeError: exploded on purpose"),
                                       ("NotAList", "returned str, not a list of LanguageRow")])
def test_a_user_module_that_fails_fails_its_episodes_named_without_a_traceback(
        tiny: Path, tmp_path: Path, cli, model_server, monkeypatch: pytest.MonkeyPatch, cls: str, says: str) -> None:
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / f"hostile_{cls.lower()}.py").write_text(HOSTILE)
    monkeypatch.syspath_prepend(str(pkg))
    before = tree_hash(tiny)
    out = tmp_path / "out"
    rc, _, err = cli("annotate", "--root", tiny, "--out", out, f"--modules=hostile_{cls.lower()}:{cls}", *OFF,
                     *model_flags(model_server.api_base))
    assert rc == 1, err[-2000:]
    assert "Traceback" not in err, err[-3000:]
    name = cls.lower()
    for episode in (0, 1):  # each episode failed on its own, named with its module
        assert f"episode {episode}, module {name}: " in err and says in err
    assert not out.exists() and tree_hash(tiny) == before


@pytest.mark.parametrize("spec", ["../../etc/passwd:X", ".relative:X", ":X"])
def test_a_module_spec_that_is_not_an_importable_name_is_one_line(tiny: Path, tmp_path: Path, cli, model_server,
                                                                 spec: str) -> None:
    rc, _, err = cli("annotate", "--root", tiny, "--out", tmp_path / "out", f"--modules={spec}", *OFF,
                     *model_flags(model_server.api_base))
    assert rc == 2
    assert f"--modules={spec}" in one_error_line(err)
    assert model_server.stats.requests == 0 and not (tmp_path / "out").exists()
