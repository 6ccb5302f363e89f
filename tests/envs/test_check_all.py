"""``turngym envs check --all``, as CI runs it: every env that can run here keeps every promise.

One test per registered id that can run here (``list_envs()``: TextArena games, the built-in envs, sandboxed
ones in Docker, web envs in Chromium; a spread sample of the big one-class families, ``SAMPLED``), each the
whole of ``check_registered_env``.
This is the one place the checker runs over the registry; other tests check their own fakes.
"""

from __future__ import annotations

import warnings

import pytest

from turngym.core.checker import check_registered_env
from turngym.core.registry import list_envs

#: families of many envs of one class whose checks cost tens of seconds an id (a MiniWoB++ reset loads a page in
#: Chromium; a ScienceWorld or TextWorld game starts or generates in Java/Inform): CI checks this many of each,
#: spread over the family (every check on each); `turngym envs check --all` runs them all (not in CI: ~2 hours
#: on the 2-core machine). Every other family is checked whole.
SAMPLED: dict[str, int | tuple[str, ...]] = {
    "miniwob/": 4,  # ~20 s an id (sync-API envs share one Chromium; random actions wait out actionability timeouts)
    # one with the room-listing order that needed the JVM's hashCode fix, one with a short gold path
    "scienceworld/": ("scienceworld/find-animal-v0", "scienceworld/lifespan-shortest-lived-v0"),
    "twx/": 3,
    "textworld/": 1,
}
#: a sampled family still gets every check, with fewer seeds and steps
LIGHTER = {"miniwob/": {"seeds": 4, "steps": 3}}


def _ids() -> list[str]:
    ids = [info.id for info in list_envs()]
    out = [i for i in ids if not i.startswith(tuple(SAMPLED))]
    for prefix, n in SAMPLED.items():
        family = [i for i in ids if i.startswith(prefix)]
        out += [i for i in n if i in family] if isinstance(n, tuple) else family[:: max(1, -(-len(family) // n))]
    return out


IDS = _ids()
#: ids that fail a check for a known reason not fixed yet (the test still runs them: a fix shows as XPASS)
KNOWN = {
    "miniwob/email-inbox-noscroll-v1": (
        "two loads of one seed can give page trees with other element numbers (a render race in the observation's "
        "settle, not the seed: the same emails, one element more or less when the tree is read); issue 16, item 5"
    ),
}


def _options(env_id: str) -> dict[str, int]:
    return next((options for prefix, options in LIGHTER.items() if env_id.startswith(prefix)), {})


@pytest.mark.parametrize(
    "env_id", [pytest.param(i, marks=pytest.mark.xfail(reason=KNOWN[i], strict=False)) if i in KNOWN else i for i in IDS]
)
def test_env_passes_every_check(env_id):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Gymnasium's checker warns about things text envs cannot have
        problems = check_registered_env(env_id, **_options(env_id))
    assert problems == [], "\n".join(problems)
