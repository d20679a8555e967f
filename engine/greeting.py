"""The engine's default application until the flow engine takes over.

It plays the shipped greeting, then reports every digit it hears (log,
metrics, the call's digit list) until the caller hangs up or stays silent
for ``idle_timeout`` seconds.
"""

from __future__ import annotations

import structlog

from media.call import Call
from media.prompts.player import Prompt

log = structlog.get_logger("engine.greeting")


class GreetingApplication:
    """Play ``greeting`` once, then collect digits."""

    def __init__(self, greeting: Prompt, idle_timeout: float = 60.0) -> None:
        self.greeting = greeting
        self.idle_timeout = idle_timeout

    async def __call__(self, call: Call) -> None:
        await call.play(self.greeting, interruptible=False)
        while True:
            digit = await call.get_digit(timeout=self.idle_timeout)
            if digit is None:
                log.info("greeting.idle_hangup", call_id=call.info.call_id)
                return
