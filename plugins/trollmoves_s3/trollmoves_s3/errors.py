"""Which S3 failures are worth retrying, and how to say what went wrong.

Server replies are judged by their error code and HTTP status: throttling (``SlowDown``),
request timeouts and 5xx replies are transient; missing buckets or keys, refused credentials
and other 4xx replies are not, because retrying them cannot help and only floods logs (or
locks accounts). Network trouble on the client side (refused or dropped connections,
timeouts, truncated bodies) is transient. botocore is imported lazily: these functions only
run once s3fs is loaded.
"""

from __future__ import annotations

from typing import Any

from trollmoves_core.exceptions import TransferError, causes
from trollmoves_core.retry import is_transient as core_is_transient

TRANSIENT_CODES = frozenset({
    "SlowDown", "RequestTimeout", "RequestTimeoutException", "InternalError", "ServiceUnavailable",
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled", "RequestLimitExceeded",
    "TooManyRequestsException", "BandwidthLimitExceeded", "OperationAborted", "PriorRequestNotComplete",
})


class S3Error(TransferError):
    """An S3 operation failed; the message names the cause. The mover adds what it was doing."""


def is_transient(err: BaseException) -> bool:
    """True when retrying ``err`` later may succeed."""
    if isinstance(err, S3Error):
        return err.transient
    import botocore.exceptions as boto

    for cause in causes(err):
        if isinstance(cause, boto.ClientError):
            return client_error_is_transient(cause)
        if isinstance(cause, boto.SSLError):
            return False  # a certificate mismatch does not heal by itself
        if isinstance(cause, boto.NoCredentialsError | boto.PartialCredentialsError | boto.ProfileNotFound
                      | boto.ParamValidationError):
            return False
        if isinstance(cause, boto.ConnectionError | boto.HTTPClientError | boto.IncompleteReadError):
            return True
        if _is_aiohttp_network_error(cause):
            return True
        if type(cause).__name__ == "FSTimeoutError" or isinstance(cause, TimeoutError):
            return True
    return core_is_transient(err)


def client_error_is_transient(err: Any) -> bool:
    """Classify a botocore ``ClientError`` by its code and HTTP status."""
    code, status = error_code(err), http_status(err)
    return code in TRANSIENT_CODES or (status is not None and (status >= 500 or status == 429))


def describe(err: BaseException, bucket: str, key: str) -> str:
    """One line naming the cause of ``err`` for an operation on ``bucket``/``key``."""
    import botocore.exceptions as boto

    for cause in causes(err):
        if isinstance(cause, boto.ClientError):
            return _describe_client_error(cause, bucket, key)
        if isinstance(cause, boto.NoCredentialsError):
            return ("NoCredentialsError: no S3 credentials found; give key and secret, a profile, "
                    "or anon=true for public buckets")
    text = " ".join(str(err).split()) or type(err).__name__
    return text if type(err).__name__ in text else f"{type(err).__name__}: {text}"


def error_code(err: Any) -> str:
    return str(getattr(err, "response", {}).get("Error", {}).get("Code", ""))


def http_status(err: Any) -> int | None:
    status = getattr(err, "response", {}).get("ResponseMetadata", {}).get("HTTPStatusCode")
    return int(status) if status is not None else None


def _describe_client_error(err: Any, bucket: str, key: str) -> str:
    code, status = error_code(err), http_status(err)
    message = str(err.response.get("Error", {}).get("Message") or "").strip()
    if code == "NoSuchBucket":
        return f"NoSuchBucket: bucket {bucket!r} does not exist"
    if code in ("NoSuchKey", "404", "NotFound"):
        return f"NoSuchKey: no object {key!r} in bucket {bucket!r}"
    if code in ("AccessDenied", "403", "Forbidden"):
        return f"AccessDenied: access to bucket {bucket!r} denied for these credentials"
    if code == "InvalidAccessKeyId":
        return "InvalidAccessKeyId: the server does not know this access key (check key/profile)"
    if code == "SignatureDoesNotMatch":
        return "SignatureDoesNotMatch: the secret key does not match the access key"
    where = f" (HTTP {status})" if status else ""
    return f"{code or type(err).__name__}{where}: {message or err}"


def _is_aiohttp_network_error(err: BaseException) -> bool:
    try:
        import aiohttp
    except ImportError:  # pragma: no cover - aiobotocore always brings aiohttp
        return False
    if isinstance(err, aiohttp.ClientConnectorCertificateError | aiohttp.ClientSSLError):
        return False
    return isinstance(err, aiohttp.ClientConnectionError | aiohttp.ClientPayloadError)
