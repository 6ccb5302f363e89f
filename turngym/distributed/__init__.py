"""Scale-out: rollout workers as Ray actors (``turngym.distributed.ray_rollout``, needs ``turngym[ray]``)."""
