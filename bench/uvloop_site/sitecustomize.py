"""Put on PYTHONPATH by `python -m bench.chat --services-on-uvloop`: every asyncio.run() in
the process then runs on uvloop, so the services can be measured on it without changing
their code. An experiment knob, not how the services normally run."""

import uvloop

uvloop.install()
