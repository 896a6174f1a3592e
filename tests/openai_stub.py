"""A local OpenAI-compatible HTTP server for tests: POST /v1/chat/completions answers from a script.

The code under test uses the real `openai` client over HTTP against it; nothing is patched.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    status: int = 200
    content: str | None = None  # the assistant message text (for 200)
    error: dict[str, Any] | None = None
    delay: float = 0.0
    usage: tuple[int, int] = (350, 140)
    model: str = ""  # the model the server says answered (default: the one asked for)
    refusal: str | None = None
    finish_reason: str = "stop"


@dataclass
class OpenAIStub:
    replies: deque[Reply] = field(default_factory=deque)
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    base_url: str = ""
    _server: ThreadingHTTPServer | None = None

    def draft(
        self,
        subject: str,
        body: str,
        is_final: bool | None = None,
        acknowledges_previous: bool | None = True,
        **reply: Any,
    ) -> None:
        """A structured answer; `is_final` None: the truth for the stage the request asked for."""
        fields = {
            "subject": subject,
            "body": body,
            "is_final": is_final,
            "acknowledges_previous": acknowledges_previous,
        }
        self.replies.append(Reply(content=json.dumps(fields), **reply))

    def fail(self, status: int, times: int = 1, delay: float = 0.0) -> None:
        for _ in range(times):
            self.replies.append(
                Reply(status=status, error={"message": f"stub error {status}", "type": "stub"}, delay=delay)
            )

    def start(self) -> str:
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                stub.requests.append(json.loads(self.rfile.read(length) or b"{}"))
                stub.headers.append({key.lower(): value for key, value in self.headers.items()})
                reply = stub.replies.popleft() if stub.replies else Reply(status=500, error={"message": "no reply"})
                request = stub.requests[-1]
                if reply.content and '"is_final": null' in reply.content:
                    asked = str(request.get("messages", [{}])[-1].get("content", ""))
                    final = "Write the Followup_2 email" in asked
                    reply.content = reply.content.replace('"is_final": null', f'"is_final": {str(final).lower()}')
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status == 200:
                    payload: dict[str, Any] = {
                        "id": f"chatcmpl-{len(stub.requests)}",
                        "object": "chat.completion",
                        "created": int(time.time()),
                        "model": reply.model or request.get("model", "stub"),
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": reply.content, "refusal": reply.refusal},
                                "finish_reason": reply.finish_reason,
                            }
                        ],
                        "usage": {
                            "prompt_tokens": reply.usage[0],
                            "completion_tokens": reply.usage[1],
                            "total_tokens": sum(reply.usage),
                        },
                    }
                else:
                    payload = {"error": reply.error or {}}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("retry-after-ms", "10")
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout tests)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        host, port = str(self._server.server_address[0]), int(self._server.server_address[1])
        self.base_url = f"http://{host}:{port}/v1"
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
