"""Envs as services: ``turngym serve`` (the OpenEnv wire protocol, MCP) and ``remote/<url>`` envs that play them.

turngym serve turngym/GuessNumber-v0            # ws://127.0.0.1:8000/ws
env = turngym.make("remote/ws://127.0.0.1:8000")  # a TurnEnv playing the served env
"""
