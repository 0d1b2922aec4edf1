"""A test function: echoes its input and shows what the platform gave it.

A JSON body may ask for behaviours: ``{"sleep": 3}`` sleeps (blocking), ``{"raise": "boom"}`` raises,
``{"timeoutError": true}`` raises ``TimeoutError`` (the FDK answers 504), ``{"log": "text"}`` prints
``text`` to stdout and logs it to stderr, ``{"exit": 3}`` kills the process mid-call, ``{"env": ["NAME",
...]}`` returns those variables.
"""

import io
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from fdk import response


def handler(ctx: Any, data: io.BytesIO | None = None) -> Any:
    raw = data.getvalue() if data is not None else b""
    try:
        request: Any = json.loads(raw) if raw else {}
    except ValueError:
        request = {}
    if not isinstance(request, dict):
        request = {}
    if request.get("log"):
        print(f"stdout: {request['log']}")
        logging.getLogger("echo").warning("stderr: %s", request["log"])
    if request.get("sleep"):
        time.sleep(float(request["sleep"]))
    if "exit" in request:
        os._exit(int(request["exit"]))
    if request.get("raise"):
        raise ValueError(request["raise"])
    if request.get("timeoutError"):
        raise TimeoutError("the handler gave up")
    result = {
        "body": raw.decode("utf-8", "replace"),
        "pid": os.getpid(),
        "cwd": str(Path.cwd()),
        "ctx": {"appId": ctx.AppID(), "appName": ctx.AppName(), "fnId": ctx.FnID(), "fnName": ctx.FnName(),
                "callId": ctx.CallID(), "deadline": ctx.Deadline(), "format": ctx.Format(),
                "requestUrl": ctx.RequestURL(), "method": ctx.Method()},
        "headers": dict(ctx.Headers()),
        "fnEnv": {k: v for k, v in os.environ.items() if k.startswith("FN_")},
        "rpEnv": {k: v for k, v in os.environ.items() if k.startswith("OCI_RESOURCE_PRINCIPAL_")},
        "env": {name: os.environ.get(name) for name in request.get("env", [])},
        "home": os.environ.get("HOME"),
    }
    return response.Response(ctx, response_data=json.dumps(result),
                             headers={"Content-Type": "application/json", "X-Echo": "yes"})
