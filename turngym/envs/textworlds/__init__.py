"""Text worlds: simulated worlds played in text, whose engines are other packages.

scienceworld.py   ScienceWorld's 30 science tasks (``scienceworld/<task>-v0``)
twx.py            TextWorldExpress's games (``twx/<game>-v0``)
base.py           their shared base: one engine JVM per env, bracketed commands, score rewards
jvm.py            the JVM behind py4j, with pid files for the reaper
tw_games.py       TextWorld games made with tw-make (``textworld/custom-v0``), played in-process by Jericho
registry.py       the registrations (imports none of the engines)
"""
