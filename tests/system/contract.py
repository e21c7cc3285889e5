"""The contract documents as checks: docs/asyncapi.yaml for what goes over
Kafka (requests, replies, dead letters and their headers) and
docs/openapi.yaml for the query endpoint. The harness runs every request
the tests send, every reply and dead letter they read and every HTTP
answer they get through these (python3-jsonschema), so that the documents
and ticketd cannot drift apart unnoticed."""

import json
import os
import re

import jsonschema
import yaml

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
ASYNCAPI = os.path.join(REPO, "docs", "asyncapi.yaml")
OPENAPI = os.path.join(REPO, "docs", "openapi.yaml")

# ticketd's defaults (etc/ticketd.conf), which the documents state.
MAX_MESSAGE_BYTES = 65536
INT64_MAX = 2 ** 63 - 1


def _uri(path):
    return "file://" + path


class Malformed(ValueError):
    """What ticketd's parser (jansson, JSON_REJECT_DUPLICATES) refuses
    before any field is looked at."""


def strict_json(value):
    """Parse value as ticketd does: UTF-8, one JSON object, no duplicate
    keys, no NaN/Infinity, no integer beyond 64 bits, no NUL in a string."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise Malformed("duplicate key")
        return dict(items)

    def constant(name):
        raise Malformed("not JSON: %s" % name)

    def integer(text):
        v = int(text)
        if not -INT64_MAX - 1 <= v <= INT64_MAX:
            raise Malformed("integer beyond 64 bits")
        return v

    try:
        text = value.decode("utf-8")
        obj = json.loads(text, object_pairs_hook=pairs, parse_constant=constant,
                         parse_int=integer)
    except (UnicodeDecodeError, ValueError) as e:
        raise Malformed(str(e))

    def no_nul(v):
        if isinstance(v, str) and "\x00" in v:
            raise Malformed("NUL in a string")
        if isinstance(v, dict):
            for k, x in v.items():
                no_nul(k)
                no_nul(x)
        if isinstance(v, list):
            for x in v:
                no_nul(x)
    no_nul(obj)
    return obj


class Contract:
    def __init__(self):
        with open(ASYNCAPI) as f:
            self.asyncapi = yaml.safe_load(f)
        with open(OPENAPI) as f:
            self.openapi = yaml.safe_load(f)
        store = {_uri(ASYNCAPI): self.asyncapi, _uri(OPENAPI): self.openapi}
        self._async_resolver = jsonschema.RefResolver(_uri(ASYNCAPI), self.asyncapi,
                                                      store=store)
        self._open_resolver = jsonschema.RefResolver(_uri(OPENAPI), self.openapi,
                                                     store=store)
        channels = self.asyncapi["channels"]
        self.request = self._one_of(channels["requests"])
        self.reply = self._one_of(channels["replies"])
        self.availability = self._one_of(channels["availability"])
        messages = self.asyncapi["components"]["messages"]
        self.dead_letter_headers = self._async(messages["deadLetter"]["headers"])
        self.undeliverable_headers = self._async(messages["undeliverableReply"]["headers"])
        self.any_reply = self._async({"$ref": "#/components/schemas/Reply"})
        self.request_headers = self._async({"$ref": "#/components/schemas/RequestHeaders"})
        self.reply_headers = self._async({"$ref": "#/components/schemas/ReplyHeaders"})
        self._paths = []
        for template, item in self.openapi["paths"].items():
            regex = "^" + re.sub(r"\\\{[a-z_]+\\\}", "[^/]+", re.escape(template)) + "$"
            self._paths.append((re.compile(regex), template, item))

    # AsyncAPI 3.0's default schema format is based on JSON Schema draft 7.
    def _async(self, schema):
        return jsonschema.Draft7Validator(schema, resolver=self._async_resolver)

    def _one_of(self, channel):
        """A message on the channel is one of the channel's messages."""
        refs = [{"$ref": m["$ref"] + "/payload"} for m in channel["messages"].values()]
        return self._async({"oneOf": refs})

    @staticmethod
    def _errors(validator, instance):
        def where(e):
            return "/".join(str(p) for p in e.absolute_path) or "(root)"
        out = []
        for e in validator.iter_errors(instance):
            # For "one of the messages": what the message of the right
            # type (or status) lacks, not that it is no other message.
            detail = [c for c in (e.context or [])
                      if not (c.validator in ("const", "enum") and
                              list(c.absolute_path)[-1:] in (["type"], ["status"]))]
            out.append("%s: %s%s" % (where(e), e.message[:200], "".join(
                "; %s: %s" % (where(c), c.message[:200]) for c in detail[:4])))
        return out

    # ------------------------------------------------------------- Kafka
    def request_errors(self, value):
        """[] when value is a request docs/asyncapi.yaml allows, else why
        not (ticketd must answer it `invalid`)."""
        if value is None or len(value) == 0:
            return ["no value"]
        if len(value) > MAX_MESSAGE_BYTES:
            return ["larger than max_message_bytes"]
        try:
            obj = strict_json(value)
        except Malformed as e:
            return ["malformed: %s" % e]
        return self._errors(self.request, obj)

    def reply_errors(self, obj):
        return self._errors(self.reply, obj)

    def availability_errors(self, value):
        """A message of the availability topic (its value, bytes)."""
        try:
            obj = json.loads(value)
        except (TypeError, ValueError) as e:
            return ["not JSON: %s" % e]
        return self._errors(self.availability, obj)

    def _schema_at(self, schema):
        while "$ref" in schema and "x-kafka-header-encoding" not in schema:
            _, schema = self._async_resolver.resolve(schema["$ref"])
        return schema

    def decode_headers(self, headers, schema_validator):
        """Kafka header bytes to values, by each documented header's
        x-kafka-header-encoding (utf8, int32be, int64be, bytes); the last
        value of a repeated header wins, as Spring's lastHeader. Returns
        (values, errors)."""
        props = schema_validator.schema.get("properties")
        if props is None:
            _, resolved = self._async_resolver.resolve(schema_validator.schema["$ref"])
            props = resolved["properties"]
        values, errors = {}, []
        for name, raw in headers:
            if name not in props:
                continue
            encoding = self._schema_at(props[name]).get("x-kafka-header-encoding", "bytes")
            raw = raw or b""
            try:
                if encoding == "utf8":
                    values[name] = raw.decode("utf-8")
                elif encoding in ("int32be", "int64be"):
                    size = 4 if encoding == "int32be" else 8
                    if len(raw) != size:
                        raise ValueError("%d bytes, not %d" % (len(raw), size))
                    values[name] = int.from_bytes(raw, "big", signed=True)
                else:
                    values[name] = raw.decode("latin-1")
            except ValueError as e:
                errors.append("header %s (%s): %s" % (name, encoding, e))
        return values, errors

    def header_errors(self, headers, validator):
        values, errors = self.decode_headers(headers, validator)
        return errors + self._errors(validator, values)

    def dead_letter_errors(self, headers, value):
        """A record of the dead-letter topic: a copied request, or a reply
        that could not be delivered."""
        names = {n for n, _ in headers}
        if "ticketd-reply-topic" in names:
            errors = self.header_errors(headers, self.undeliverable_headers)
            try:
                errors += self._errors(self.any_reply, json.loads(value))
            except (TypeError, ValueError) as e:
                errors.append("payload: %s" % e)
            return errors
        return self.header_errors(headers, self.dead_letter_headers)

    # -------------------------------------------------------------- HTTP
    def http_errors(self, method, path, status, headers, body):
        """[] when this answer is one docs/openapi.yaml describes."""
        path = path.split("?", 1)[0]
        components = self.openapi["components"]["responses"]
        if method != "GET":
            response = components["MethodNotAllowed"] if status == 405 else None
        else:
            response = None
            for regex, template, item in self._paths:
                if regex.match(path):
                    responses = item["get"]["responses"]
                    response = responses.get(str(status))
                    break
            else:
                # Not a documented path: the description says 404, or 414
                # for a path too long, both with an Error body.
                if status == 404:
                    response = components["NotFound"]
                elif status == 414:
                    response = components["UriTooLong"]
        if response is None:
            return ["%s %s: status %d is not documented" % (method, path, status)]
        if "$ref" in response:
            _, response = self._open_resolver.resolve(response["$ref"])
        errors = []
        lower = {k.lower(): v for k, v in headers.items()}
        for name, spec in response.get("headers", {}).items():
            if "$ref" in spec:
                _, spec = self._open_resolver.resolve(spec["$ref"])
            got = lower.get(name.lower())
            if got is None:
                if spec.get("required"):
                    errors.append("header %s missing" % name)
            else:
                errors += ["header %s: %s" % (name, e) for e in self._errors(
                    jsonschema.Draft202012Validator(spec["schema"],
                                                    resolver=self._open_resolver), got)]
        content = response.get("content")
        if content is None:  # 304: no body
            return errors + (["a body where none is documented"] if body else [])
        ctype = lower.get("content-type", "")
        if ctype not in content:
            return errors + ["content type %r is not one of %s" % (ctype, sorted(content))]
        schema = content[ctype]["schema"]
        if ctype.startswith("application/json"):
            try:
                instance = json.loads(body)
            except ValueError as e:
                return errors + ["body is not JSON: %s" % e]
        else:
            instance = body
        validator = jsonschema.Draft202012Validator(schema, resolver=self._open_resolver)
        return errors + ["body %s" % e for e in self._errors(validator, instance)]


_contract = None


def contract():
    """One Contract for the run (the documents are read once)."""
    global _contract
    if _contract is None:
        _contract = Contract()
    return _contract
