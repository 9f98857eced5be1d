# Copyright: kubeforge.cluster contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Read the type declarations of a Go source file: structs, named types, typed constants.

Enough of Go for API type files (``types.go`` of Kubernetes API groups): ``package``, ``import``,
``type`` (single and grouped, aliases), ``const`` blocks, and methods, whose receivers are noted so
that types with their own ``MarshalJSON``/``UnmarshalJSON`` are known. Function bodies, ``var``
blocks and everything else are skipped by bracket matching. Used by ``tools/kube_schema.py``.

Type expressions are tuples:
``("name", ident)``, ``("qual", package_alias, ident)``, ``("ptr", t)``, ``("slice", t)``,
``("array", length, t)``, ``("map", key, value)``, ``("struct", [Field])``, ``("interface",)``,
``("func",)``, ``("chan", t)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_TOKEN_RE = re.compile(r"""
    (?P<comment>//[^\n]*|/\*.*?\*/)
  | (?P<newline>\n)
  | (?P<space>[ \t\r\f]+)
  | (?P<raw>`[^`]*`)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<rune>'(?:[^'\\\n]|\\.)+')
  | (?P<number>\.?[0-9][0-9a-zA-Z_.]*)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>\.\.\.|<-|:=|&&|\|\||[-+*/%&|^<>=!]=?|[(){}\[\],;.:~])
""", re.VERBOSE | re.DOTALL)

# Tokens after which a newline ends a statement (the Go specification's semicolon rule).
_ENDS_STATEMENT = frozenset(("ident", "number", "string", "raw", "rune"))
_ENDS_STATEMENT_PUNCT = frozenset((")", "]", "}"))
_STATEMENT_KEYWORDS = frozenset(("break", "continue", "fallthrough", "return"))
_KEYWORDS = frozenset(("break", "case", "chan", "const", "continue", "default", "defer", "else", "fallthrough", "for", "func",
                       "go", "goto", "if", "import", "interface", "map", "package", "range", "return", "select", "struct",
                       "switch", "type", "var"))


class GoSyntaxError(ValueError):
    """The source is not Go this reader understands; names the line."""

    def __init__(self, message, line):
        ValueError.__init__(self, "line %d: %s" % (line, message))
        self.line = line


@dataclass
class Token:
    kind: str
    value: str
    line: int


@dataclass
class Field:
    """A struct field; ``names`` is empty for an embedded field."""

    names: list
    type: tuple
    tag: str = ""

    @property
    def embedded(self):
        return not self.names


@dataclass
class GoFile:
    package: str
    imports: dict = field(default_factory=dict)      # alias -> import path
    types: dict = field(default_factory=dict)        # name -> type expression
    aliases: set = field(default_factory=set)        # names declared with `type A = B`
    consts: dict = field(default_factory=dict)       # type name -> [values] of typed constants, in order
    json_methods: dict = field(default_factory=dict)  # type name -> {"MarshalJSON", "UnmarshalJSON", ...}


def tokenize(source):
    """Go tokens with statement-ending newlines kept as ``;`` tokens (Go's automatic semicolons)."""
    tokens = []
    line = 1
    position = 0
    while position < len(source):
        match = _TOKEN_RE.match(source, position)
        if match is None:
            raise GoSyntaxError("unexpected character %r" % source[position], line)
        kind = match.lastgroup
        text = match.group()
        position = match.end()
        if kind in ("space",):
            continue
        if kind == "comment":
            if "\n" in text and _needs_semicolon(tokens):
                tokens.append(Token("punct", ";", line))
            line += text.count("\n")
            continue
        if kind == "newline":
            if _needs_semicolon(tokens):
                tokens.append(Token("punct", ";", line))
            line += 1
            continue
        tokens.append(Token(kind, text, line))
        line += text.count("\n")
    if _needs_semicolon(tokens):
        tokens.append(Token("punct", ";", line))
    return tokens


def _needs_semicolon(tokens):
    if not tokens:
        return False
    last = tokens[-1]
    if last.kind == "ident":
        return last.value not in _KEYWORDS or last.value in _STATEMENT_KEYWORDS
    if last.kind in _ENDS_STATEMENT:
        return True
    return last.kind == "punct" and last.value in _ENDS_STATEMENT_PUNCT


def unquote(token):
    """The value of a Go string literal token (interpreted or raw)."""
    if token.kind == "raw":
        return token.value[1:-1]
    if token.kind != "string":
        raise GoSyntaxError("expected a string literal, got %r" % token.value, token.line)
    body = token.value[1:-1]
    escapes = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}
    return re.sub(r"\\(.)", lambda m: escapes.get(m.group(1), m.group(1)), body)


def struct_tag(tag, key):
    """``reflect.StructTag.Get``: the value of ``key`` in a tag like ``json:"name,omitempty" yaml:"x"``."""
    for match in re.finditer(r'([^\s:"]+):"((?:[^"\\]|\\.)*)"', tag):
        if match.group(1) == key:
            return match.group(2)
    return None


class _Parser:
    def __init__(self, tokens):
        self.tokens = tokens
        self.index = 0

    # token helpers --------------------------------------------------------------------
    def peek(self, offset=0):
        index = self.index + offset
        return self.tokens[index] if index < len(self.tokens) else Token("eof", "", self.tokens[-1].line if self.tokens else 0)

    def next(self):
        token = self.peek()
        self.index += 1
        return token

    def at(self, value, offset=0):
        token = self.peek(offset)
        return token.kind in ("punct", "ident") and token.value == value

    def expect(self, value):
        token = self.next()
        if token.value != value or token.kind not in ("punct", "ident"):
            raise GoSyntaxError("expected %r, got %r" % (value, token.value or "end of file"), token.line)
        return token

    def ident(self):
        token = self.next()
        if token.kind != "ident":
            raise GoSyntaxError("expected a name, got %r" % (token.value or "end of file"), token.line)
        return token.value

    def skip_semicolons(self):
        while self.at(";"):
            self.next()

    def skip_balanced(self):
        """Skip one bracketed group starting at the current ( [ or {."""
        pairs = {"(": ")", "[": "]", "{": "}"}
        opening = self.next()
        stack = [pairs[opening.value]]
        while stack:
            token = self.next()
            if token.kind == "eof":
                raise GoSyntaxError("unbalanced %r" % opening.value, opening.line)
            if token.kind == "punct" and token.value in pairs:
                stack.append(pairs[token.value])
            elif token.kind == "punct" and token.value == stack[-1]:
                stack.pop()

    def skip_statement(self):
        """Skip to the end of the current top-level declaration."""
        while True:
            token = self.peek()
            if token.kind == "eof":
                return
            if token.kind == "punct" and token.value in "([{":
                self.skip_balanced()
                continue
            self.next()
            if token.kind == "punct" and token.value == ";":
                return

    # declarations ---------------------------------------------------------------------
    def file(self):
        self.skip_semicolons()
        self.expect("package")
        result = GoFile(package=self.ident())
        while self.peek().kind != "eof":
            self.skip_semicolons()
            token = self.peek()
            if token.kind == "eof":
                break
            if self.at("import"):
                self.next()
                self.group(lambda: self.import_spec(result))
            elif self.at("type"):
                self.next()
                self.group(lambda: self.type_spec(result))
            elif self.at("const"):
                self.next()
                self.const_decl(result)
            elif self.at("func"):
                self.func_decl(result)
            else:
                self.skip_statement()
        return result

    def group(self, spec):
        if self.at("("):
            self.next()
            self.skip_semicolons()
            while not self.at(")"):
                spec()
                self.skip_semicolons()
            self.next()
        else:
            spec()

    def import_spec(self, result):
        alias = None
        if self.peek().kind == "ident" or self.at("."):
            alias = self.next().value
        path = unquote(self.next())
        if alias in (None,):
            alias = path.rsplit("/", 1)[-1]
        result.imports[alias] = path

    def type_spec(self, result):
        name = self.ident()
        if self.at("[") and self.peek(1).kind == "ident" and not self.at("]", 2):
            raise GoSyntaxError("generic type %s is not supported" % name, self.peek().line)
        if self.at("="):
            self.next()
            result.aliases.add(name)
        result.types[name] = self.type_expr()

    def const_decl(self, result):
        def spec():
            names = [self.ident()]
            while self.at(","):
                self.next()
                names.append(self.ident())
            type_name = None
            if not self.at("=") and not self.at(";") and not self.at(")"):
                type_name = self.type_expr()
            if self.at("="):
                self.next()
                values = self.const_values()
            else:
                values = None  # implicit repetition (iota style): not a literal value we can record
            if type_name is None or values is None:
                return
            if type_name[0] == "name":
                for value in values:
                    if value is not None:
                        result.consts.setdefault(type_name[1], []).append(value)
        if self.at("("):
            self.next()
            self.skip_semicolons()
            while not self.at(")"):
                spec()
                self.skip_semicolons()
            self.next()
        else:
            spec()

    def const_values(self):
        """The values of a const spec's expression list: literals become Python values, others None."""
        values = []
        while True:
            start = self.index
            depth = 0
            while True:
                token = self.peek()
                if token.kind == "eof":
                    break
                if token.kind == "punct" and token.value in "([{":
                    depth += 1
                elif token.kind == "punct" and token.value in ")]}":
                    if depth == 0:
                        break
                    depth -= 1
                elif depth == 0 and token.kind == "punct" and token.value in (",", ";"):
                    break
                self.next()
            expression = self.tokens[start:self.index]
            values.append(_literal(expression))
            if self.at(","):
                self.next()
                continue
            return values

    def func_decl(self, result):
        self.expect("func")
        receiver = None
        if self.at("("):
            start = self.index
            self.skip_balanced()
            names = [t.value for t in self.tokens[start:self.index] if t.kind == "ident"]
            receiver = names[-1] if names else None
        name = self.peek().value if self.peek().kind == "ident" else None
        if receiver and name in ("MarshalJSON", "UnmarshalJSON", "MarshalText", "UnmarshalText"):
            result.json_methods.setdefault(receiver, set()).add(name)
        # skip the signature and the body
        while True:
            token = self.peek()
            if token.kind == "eof" or (token.kind == "punct" and token.value == ";"):
                self.next()
                return
            if token.kind == "punct" and token.value == "{":
                self.skip_balanced()
                return
            if token.kind == "punct" and token.value in "([":
                self.skip_balanced()
                continue
            self.next()

    # type expressions -----------------------------------------------------------------
    def type_expr(self):
        token = self.peek()
        if self.at("*"):
            self.next()
            return ("ptr", self.type_expr())
        if self.at("["):
            self.next()
            if self.at("]"):
                self.next()
                return ("slice", self.type_expr())
            length = self.next()
            self.expect("]")
            return ("array", length.value, self.type_expr())
        if self.at("map"):
            self.next()
            self.expect("[")
            key = self.type_expr()
            self.expect("]")
            return ("map", key, self.type_expr())
        if self.at("chan"):
            self.next()
            return ("chan", self.type_expr())
        if self.at("struct"):
            self.next()
            return ("struct", self.struct_fields())
        if self.at("interface"):
            self.next()
            self.skip_balanced()
            return ("interface",)
        if self.at("func"):
            self.next()
            self.skip_balanced()  # parameters
            if self.at("("):
                self.skip_balanced()  # several results
            elif self.peek().kind == "ident" or self.at("*") or self.at("["):
                self.type_expr()  # one result
            return ("func",)
        if self.at("("):
            self.next()
            inner = self.type_expr()
            self.expect(")")
            return inner
        if token.kind != "ident":
            raise GoSyntaxError("expected a type, got %r" % (token.value or "end of file"), token.line)
        self.next()
        if self.at("."):
            self.next()
            return ("qual", token.value, self.ident())
        return ("name", token.value)

    def struct_fields(self):
        self.expect("{")
        fields = []
        self.skip_semicolons()
        while not self.at("}"):
            fields.append(self.struct_field())
            self.skip_semicolons()
        self.next()
        return fields

    def struct_field(self):
        line = self.peek().line
        if self.at("*"):
            self.next()
            return Field([], ("ptr", self.type_expr()), self.tag())
        first = self.peek()
        if first.kind != "ident":
            raise GoSyntaxError("expected a field, got %r" % first.value, line)
        following = self.peek(1)
        if following.kind == "punct" and following.value == ".":
            return Field([], self.type_expr(), self.tag())  # embedded qualified type
        if following.kind in ("string", "raw") or (following.kind == "punct" and following.value in (";", "}")):
            self.next()
            return Field([], ("name", first.value), self.tag())  # embedded local type
        names = [self.ident()]
        while self.at(","):
            self.next()
            names.append(self.ident())
        return Field(names, self.type_expr(), self.tag())

    def tag(self):
        if self.peek().kind in ("string", "raw"):
            return unquote(self.next())
        return ""


def _literal(tokens):
    """A Go constant expression of one literal token as a Python value, else None."""
    if len(tokens) != 1:
        return None
    token = tokens[0]
    if token.kind in ("string", "raw"):
        return unquote(token)
    if token.kind == "number" and re.match(r"^[0-9]+$", token.value):
        return int(token.value)
    if token.kind == "ident" and token.value in ("true", "false"):
        return token.value == "true"
    return None


def parse(source):
    """Parse one Go file's declarations into a :class:`GoFile`."""
    return _Parser(tokenize(source)).file()
