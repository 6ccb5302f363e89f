"""turngym's own environments, registered by string so that listing them imports nothing heavy.

Each family registers its envs in its own ``registry.py`` (games, tools, web, textworlds, adapters); this
function calls them all. Importing ``turngym`` runs it.
"""


def register_builtin_envs() -> None:
    from turngym.envs.adapters.registry import register_adapters
    from turngym.envs.games.registry import register_games
    from turngym.envs.textworlds.registry import register_textworlds
    from turngym.envs.tools.registry import register_tools
    from turngym.envs.web.registry import register_web

    register_games()
    register_tools()
    register_web()
    register_textworlds()
    register_adapters()
