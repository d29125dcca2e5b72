"""Schemathesis hooks for PassMe's API: serializers for the two bodies that are neither JSON nor a
form (a browser's CSP report, a mail relay's delivery report), so those operations are fuzzed too
instead of skipped."""

import json

import schemathesis


@schemathesis.serializer("application/csp-report")
def csp_report(ctx, value):
    return json.dumps(value).encode()


@schemathesis.serializer("message/rfc822")
def rfc822(ctx, value):
    return str(value).encode()
