"""The HTML forms of a pretix page, as a browser would submit them, and its error texts.

pretix's shop pages are server-rendered Django forms; the buyer reads them
with the standard library's HTML parser instead of a browser engine: which
forms there are, their action, every named control (also unchecked boxes, so
the buyer can tell which fields a step asks for), and the values a browser
would send unchanged (hidden inputs such as the CSRF token, checked boxes,
the selected option).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser

# Controls a browser never submits as form data when the form is sent by script.
_NOT_SUBMITTED = frozenset({"submit", "button", "image", "reset", "file"})

_ALERT_RE = re.compile(r'<div[^>]*class="[^"]*alert-danger[^"]*"[^>]*>(.*?)</div>', re.S)
_FIELD_ERROR_RE = re.compile(
    r'<(?:div|span|p)[^>]*class="[^"]*(?:help-block|invalid-feedback)[^"]*"[^>]*>'
    r"(.*?)</(?:div|span|p)>",
    re.S,
)
_TAG_RE = re.compile(r"<[^>]+>")
MAX_ERROR_CHARS = 500


@dataclasses.dataclass
class Form:
    """One ``<form>``: where it goes and what a browser would send."""

    action: str = ""
    method: str = "get"
    fields: list[tuple[str, str]] = dataclasses.field(default_factory=list)  # sent, in order
    names: list[str] = dataclasses.field(default_factory=list)  # every named control
    kinds: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> input type
    options: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # radio/select

    @classmethod
    def from_attrs(cls, attrs: dict[str, str]) -> Form:
        return cls(action=attrs.get("action") or "", method=(attrs.get("method") or "get").lower())

    def value(self, name: str) -> str | None:
        return next((v for k, v in self.fields if k == name), None)

    def data(self, overrides: dict[str, str]) -> list[tuple[str, str]]:
        """Form data as a browser would submit it, with ``overrides`` replacing/adding values."""
        kept = [(k, v) for k, v in self.fields if k not in overrides]
        return kept + [(k, v) for k, v in overrides.items() if v is not None]

    def add_control(self, name: str, kind: str) -> None:
        self.names.append(name)
        self.kinds[name] = kind


@dataclasses.dataclass
class _OpenSelect:
    name: str
    options: list[tuple[str, bool]] = dataclasses.field(default_factory=list)  # (value, selected)


@dataclasses.dataclass
class _OpenOption:
    value: str | None
    selected: bool
    text: list[str] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _OpenTextarea:
    name: str
    text: list[str] = dataclasses.field(default_factory=list)


class _FormParser(HTMLParser):
    """Collects every form; controls outside a form are ignored (pretix has none we send)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: _OpenSelect | None = None
        self._option: _OpenOption | None = None
        self._textarea: _OpenTextarea | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = Form.from_attrs(a)
            self.forms.append(self._form)
        elif self._form is None:
            return
        elif tag == "input" and a.get("name"):
            _add_input(self._form, a)
        elif tag == "select" and a.get("name"):
            self._form.add_control(a["name"], "select")
            self._select = _OpenSelect(a["name"])
        elif tag == "option" and self._select is not None:
            self._option = _OpenOption(a.get("value"), "selected" in a)
        elif tag == "textarea" and a.get("name"):
            self._form.add_control(a["name"], "textarea")
            self._textarea = _OpenTextarea(a["name"])

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option.text.append(data)
        if self._textarea is not None:
            self._textarea.text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "option":
            self._close_option()
        elif tag == "select":
            self._close_select()
        elif tag == "textarea" and self._textarea is not None:
            if self._form is not None:
                self._form.fields.append((self._textarea.name, "".join(self._textarea.text)))
            self._textarea = None
        elif tag == "form":
            self._form = None

    def _close_option(self) -> None:
        option, select = self._option, self._select
        if option is None or select is None:
            return
        # Without a value attribute, an option submits its text, as in a browser.
        value = option.value if option.value is not None else "".join(option.text).strip()
        select.options.append((value, option.selected))
        self._option = None

    def _close_select(self) -> None:
        select = self._select
        if select is None:
            return
        if self._form is not None:
            self._form.options[select.name] = [v for v, _ in select.options]
            # A browser sends the selected options, or the first one when none is selected.
            chosen = [v for v, sel in select.options if sel] or [v for v, _ in select.options[:1]]
            self._form.fields.extend((select.name, v) for v in chosen)
        self._select = None


def _add_input(form: Form, attrs: dict[str, str]) -> None:
    name = attrs["name"]
    kind = attrs.get("type", "text").lower()
    form.add_control(name, kind)
    if kind in _NOT_SUBMITTED:
        return
    if kind in ("checkbox", "radio"):
        value = attrs.get("value", "on")
        form.options.setdefault(name, []).append(value)
        if "checked" in attrs:
            form.fields.append((name, value))
    elif "disabled" not in attrs:
        form.fields.append((name, attrs.get("value", "")))


def parse_forms(html: str) -> list[Form]:
    """Every form of ``html`` in document order."""
    parser = _FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def find_post_form(html: str, predicate: Callable[[Form], bool]) -> Form | None:
    """The first POST form of ``html`` that ``predicate`` accepts."""
    return next((f for f in parse_forms(html) if f.method == "post" and predicate(f)), None)


def error_messages(html: str) -> str:
    """Visible error texts of a pretix page, joined: the alert boxes, else the field errors."""
    found = _ALERT_RE.findall(html) or _FIELD_ERROR_RE.findall(html)
    texts = [" ".join(unescape(_TAG_RE.sub(" ", f)).split()) for f in found]
    return " | ".join(t for t in texts if t)[:MAX_ERROR_CHARS]
