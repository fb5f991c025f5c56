from __future__ import annotations

import base64
import io
import logging
from urllib.parse import quote, quote_plus

from credly_ops.logs import (
    MASK,
    RedactingFilter,
    install_redaction,
    protect,
    redact,
    secret_forms,
)

TOKEN = "tok-abcdef0123456789"


def make_logger(name: str) -> tuple[logging.Logger, io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, stream


def test_filter_masks_messages_arguments_and_tracebacks() -> None:
    logger, stream = make_logger("credly_ops.test.redaction")
    install_redaction([TOKEN], logger)
    logger.info("calling with %s", TOKEN)
    logger.debug("plain %d", 3)
    try:
        raise RuntimeError(f"failed with token {TOKEN}")
    except RuntimeError:
        logger.exception("request failed")
    output = stream.getvalue()
    assert TOKEN not in output
    assert f"calling with {MASK}" in output
    assert "plain 3" in output
    assert f"RuntimeError: failed with token {MASK}" in output


def test_handler_filter_catches_records_from_other_loggers() -> None:
    root_logger, stream = make_logger("credly_ops.test.parent")
    root_logger.propagate = False
    child = logging.getLogger("credly_ops.test.parent.httpx")
    child.propagate = True
    install_redaction([TOKEN], root_logger)
    basic = base64.b64encode(f"{TOKEN}:".encode()).decode()
    child.warning("sent %s to Credly", basic)  # no header around it: only the filter knows it
    output = stream.getvalue()
    assert basic not in output
    assert f"sent {MASK} to Credly" in output


def test_empty_secret_changes_nothing() -> None:
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("world",), None)
    assert RedactingFilter([""]).filter(record)
    assert record.getMessage() == "hello world"


def test_a_secret_is_masked_in_its_form_encoded_spellings_too() -> None:
    secret = "sj+secret/with=odd&chars 42"
    text = f"body=client_secret={quote_plus(secret)} path={quote(secret, safe='')} raw={secret}"
    cleaned = redact(text, secret_forms(secret))
    assert "secret/with" not in cleaned and "secret%2Fwith" not in cleaned
    assert cleaned.count(MASK) == 3


def test_a_protected_secret_is_masked_by_filters_made_before_it() -> None:
    logger, stream = make_logger("credly_ops.test.protected")
    install_redaction([TOKEN], logger)
    later = "protected-later-0123456789"
    logger.info("before %s", later)
    protect(later)
    logger.info("after %s and %s", later, TOKEN)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith(later)  # nothing masks a secret nobody named
    assert lines[1] == f"INFO after {MASK} and {MASK}"
