"""What every view may trust about a request's input, checked where the input is read.

- A streamed (chunked) body is read up to the request's `max_content_length`: one byte
  more is a 413, never a silently truncated body, and a malformed chunk is a 400 whatever
  the server's own chunk parser raises (werkzeug's dev server and gunicorn differ).
- A NUL byte in the path, the query string, a form or a JSON body is a 400, and so is a
  query string that is not UTF-8: no database driver ever sees one (PostgreSQL refuses
  NUL in text). So are a JSON body's lone surrogates ("\\ud800", which no driver can
  encode) and a JSON body nested deeper than the parser's stack.

Each refusal is one log line. Views set their body limit (`request.max_content_length`)
before they read the body; the checks run when it is read.
"""

import io
import logging
from collections.abc import Iterable
from urllib.parse import unquote_to_bytes

from flask import Flask, abort, request
from flask import Request as FlaskRequest
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.utils import cached_property
from werkzeug.wsgi import get_input_stream

log = logging.getLogger(__name__)


def refuse(reason: str, status: int = 400):
    log.warning(
        "request refused status=%s reason=%s path=%s remote=%s",
        status,
        reason,
        request.script_root + request.path,  # the whole path, also under a mounted app
        request.remote_addr,
    )
    abort(status, reason)


class StreamedBody(io.RawIOBase):
    """A body without Content-Length, counted as it is read."""

    def __init__(self, stream, max_bytes: int | None):
        self._stream = stream
        self._max_bytes = max_bytes
        self._read = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._stream.read(len(buffer))
        except Exception:  # each server's chunk parser raises its own type
            refuse("malformed chunked body")
        self._read += len(data)
        if self._max_bytes is not None and self._read > self._max_bytes:
            refuse(f"body over {self._max_bytes} bytes", RequestEntityTooLarge.code)
        buffer[: len(data)] = data
        return len(data)


def _holds_nul(values: Iterable) -> bool:
    return any("\x00" in value for value in values if isinstance(value, str))


def _holds_lone_surrogate(values: Iterable) -> bool:
    """Whether a string holds half a UTF-16 pair (JSON's "\\ud800"): no database driver
    can encode it."""
    for value in values:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return True
    return False


def _strings_in(document) -> Iterable[str]:
    """Every key and string value of a JSON document (without recursion: however deep)."""
    pending = [document]
    while pending:
        node = pending.pop()
        if isinstance(node, str):
            yield node
        elif isinstance(node, dict):
            for key, value in node.items():
                yield key
                pending.append(value)
        elif isinstance(node, list):
            pending.extend(node)


class Request(FlaskRequest):
    @cached_property
    def stream(self):
        limit, length = self.max_content_length, self.content_length
        if limit is not None and length is not None and length > limit:
            refuse(f"body of {length} bytes over {limit}", RequestEntityTooLarge.code)
        if "wsgi.input_terminated" in self.environ and length is None:
            return StreamedBody(self.environ["wsgi.input"], limit)
        return get_input_stream(self.environ, max_content_length=limit)

    @cached_property
    def args(self):
        decoded = unquote_to_bytes(self.query_string.replace(b"+", b" "))
        if b"\x00" in decoded:
            refuse("NUL byte in the query string")
        try:
            decoded.decode("utf-8")
        except UnicodeDecodeError:
            refuse("query string is not UTF-8")
        return super().args

    def _load_form_data(self) -> None:
        super()._load_form_data()
        form, files = self.form, self.files
        # multi=True: every value of a repeated field, not only its first.
        texts = [
            *(text for pair in form.items(multi=True) for text in pair),
            *(text for name, upload in files.items(multi=True) for text in (name, upload.filename)),
        ]
        if _holds_nul(texts):
            # Nothing of a refused form stays readable on this request.
            self.__dict__["form"] = self.__dict__["files"] = self.parameter_storage_class()
            refuse("NUL byte in the form")

    def get_json(self, force=False, silent=False, cache=True):
        try:
            document = super().get_json(force=force, silent=silent, cache=cache)
        except RecursionError:  # the parser's stack, not the document, ran out
            refuse("JSON body nested too deep")
        if _holds_nul(_strings_in(document)):
            refuse("NUL byte in the JSON body")
        if _holds_lone_surrogate(_strings_in(document)):
            refuse("lone surrogate in the JSON body")
        return document


def refuse_nul_in_path() -> None:
    if "\x00" in request.path:
        refuse("NUL byte in the path")


# Every body's ceiling unless its view sets its own (callbacks, the API, readers' posts,
# imports): an admin form is a few kilobytes, and the CSRF check reads it before any view.
DEFAULT_MAX_BODY_BYTES = 2 * 1024 * 1024


def init_app(app: Flask) -> None:
    app.request_class = Request
    app.config["MAX_CONTENT_LENGTH"] = DEFAULT_MAX_BODY_BYTES
    app.before_request(refuse_nul_in_path)
