"""Sphinx extension: search results that read as words, and anchors a reader can read.

Listed in ``_config.yml`` under ``sphinx.extra_extensions``.

* **Math in search snippets.** Sphinx's search page shows, under each hit, a snippet it cuts from the page's HTML
  (``Search.htmlToText``: the text content of the page, fetched). Math is stored there as its TeX source, typeset
  only when a reader opens the page, so a snippet showed ``\\(\\pi_1 \\to 0\\)``. At build time every math element
  of a page gets a ``data-text`` attribute with the formula in words and symbols (:func:`tex_to_text`:
  ``\\pi_1 \\to 0`` -> "π1 → 0"), and a small script on every page makes the search page's snippet use it.
* **Readable anchors.** :func:`numbered_anchors` lists the links of a page that point at an anchor docutils numbered
  (``#id3``) instead of naming it; ``_config.yml`` names the bibliography's anchors after their keys
  (``bibtex_cite_id``), and ``rharm.book.browser_check`` fails a page that still has one.
"""

from __future__ import annotations

import html
import re

#: TeX commands shown as a symbol (Greek letters, relations, operators)
SYMBOLS = {
    "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ", "epsilon": "ε", "varepsilon": "ε", "theta": "θ",
    "lambda": "λ", "mu": "μ", "nu": "ν", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "phi": "φ",
    "varphi": "φ", "chi": "χ", "psi": "ψ", "omega": "ω", "Gamma": "Γ", "Delta": "Δ", "Theta": "Θ", "Lambda": "Λ",
    "Pi": "Π", "Sigma": "Σ", "Phi": "Φ", "Psi": "Ψ", "Omega": "Ω", "ell": "ℓ",
    "to": "→", "rightarrow": "→", "leftarrow": "←", "mapsto": "↦", "infty": "∞", "le": "≤", "leq": "≤",
    "ge": "≥", "geq": "≥", "ne": "≠", "neq": "≠", "approx": "≈", "sim": "~", "ll": "≪", "gg": "≫", "pm": "±",
    "times": "×", "cdot": "·", "in": "∈", "notin": "∉", "sum": "Σ", "prod": "Π", "partial": "∂", "nabla": "∇",
    "star": "*", "ast": "*", "dots": "…", "ldots": "…", "cdots": "…", "langle": "⟨", "rangle": "⟩",
    "lVert": "‖", "rVert": "‖", "Vert": "‖", "mid": "|", "lbrace": "{", "rbrace": "}", "prime": "′",
    "sqrt": "√", "lim": "lim", "log": "log", "exp": "exp", "cos": "cos", "sin": "sin", "tanh": "tanh",
    "max": "max", "min": "min", "deg": "deg", "arg": "arg",
}
#: commands dropped with nothing in their place (sizing, spacing, fonts whose argument stays)
_DROP = {"left", "right", "big", "Big", "bigg", "Bigg", "displaystyle", "textstyle", "quad", "qquad", "limits",
         "nolimits"}
#: commands whose one argument is kept as it is (fonts, text, decorations)
_KEEP_ARG = {"mathrm", "text", "textrm", "mathit", "mathbf", "mathsf", "mathtt", "mathcal", "mathbb", "operatorname",
             "boldsymbol", "overline", "bar", "hat", "tilde", "widehat", "widetilde", "vec", "underline", "mathbfit",
             "emph", "textbf", "textit"}
_FRACTIONS = {"frac", "dfrac", "tfrac"}


def _group(tex: str, i: int) -> tuple[str, int]:
    """The argument at ``tex[i:]`` (a braced group or one character), and the index after it."""
    while i < len(tex) and tex[i] == " ":
        i += 1
    if i >= len(tex):
        return "", i
    if tex[i] == "{":
        depth, j = 0, i
        while j < len(tex):
            depth += {"{": 1, "}": -1}.get(tex[j], 0)
            if depth == 0:
                return tex[i + 1:j], j + 1
            j += 1
        return tex[i + 1:], len(tex)
    if tex[i] == "\\":
        m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
        j = i + len(m.group(0))
        if m.group(1) in _KEEP_ARG:  # a font with its argument (``_\text{seeds}``) is one argument
            arg, j = _group(tex, j)
            return m.group(0) + "{" + arg + "}", j
        return m.group(0), j
    return tex[i], i + 1


def _wrap(s: str) -> str:
    """A fraction's part in parentheses when it is more than one symbol."""
    return f"({s})" if len(s) > 1 and re.search(r"[^\w.′*]", s) else s


def _words(tex: str) -> str:
    out, i = [], 0
    while i < len(tex):
        c = tex[i]
        if c == "\\":
            m = re.match(r"\\([A-Za-z]+|.)", tex[i:])
            name, i = m.group(1), i + len(m.group(0))
            if name in _FRACTIONS:
                num, i = _group(tex, i)
                den, i = _group(tex, i)
                num, den = _words(num), _words(den)
                out.append(f"{_wrap(num)}/{_wrap(den)}")
            elif name == "sqrt":
                arg, i = _group(tex, i)
                out.append(f"√({_words(arg)})")
            elif name in _KEEP_ARG:
                arg, i = _group(tex, i)
                out.append(_words(arg))
            elif name in SYMBOLS:
                out.append(SYMBOLS[name])
            elif name in _DROP:
                pass
            elif name in (",", ";", ":", "!", " "):
                out.append(" " if name != "!" else "")
            elif name in ("{", "}", "%", "&", "_", "#", "$", "|"):
                out.append({"|": "‖"}.get(name, name))
            else:
                out.append(name)
        elif c in "_^":
            arg, i = _group(tex, i + 1)
            text = _words(arg)
            if c == "^" and text not in ("*", "′"):
                out.append("^" + (text if len(text) == 1 else f"({text})"))
            elif c == "_" and len(text) > 1:  # a one-character subscript runs on (π1); a longer one is marked
                out.append("_" + (text if text.isalnum() else f"({text})"))
            else:
                out.append(text)
        elif c in "{}":
            i += 1
        elif c == "~":
            out.append(" ")
            i += 1
        elif c == "&":
            i += 1
        else:
            out.append(c)
            i += 1
    return "".join(out)


def tex_to_text(tex: str) -> str:
    """A TeX formula as a reader would write it in plain text: delimiters gone, Greek letters and relations as
    symbols, fonts and decorations dropped, subscripts run on (``\\(\\pi_1 \\to 0\\)`` -> "π1 → 0",
    ``\\mathrm{RH}(i, j) < 1`` -> "RH(i, j) < 1", ``\\frac{a}{b}`` -> "a/b")."""
    s = html.unescape(str(tex)).strip()
    for left, right in (("\\(", "\\)"), ("\\[", "\\]"), ("$$", "$$"), ("$", "$")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left):len(s) - len(right)]
            break
    s = re.sub(r"\\begin\{[a-z*]+\}|\\end\{[a-z*]+\}|\\label\{[^}]*\}|\\nonumber|\\tag\{[^}]*\}", " ", s)
    s = s.replace("\\\\", " ")
    return re.sub(r"\s+", " ", _words(s)).strip()


# math as the HTML writer of sphinx.ext.mathjax emits it: <span class="math ...">\(...\)</span> and
# <div class="math ...">\[...\]</div> (a display block's TeX may hold tags the TeX itself escaped)
_MATH_HTML = re.compile(r'<(span|div) class="(math[^"]*)"([^>]*)>(.*?)</\1>', re.S)


def label_math(body: str) -> str:
    """``body`` with a ``data-text`` attribute (:func:`tex_to_text`) on every math element that has none."""
    def add(m: re.Match) -> str:
        tag, cls, rest, inner = m.groups()
        if "data-text=" in rest or "<" in inner:
            return m.group(0)
        text = html.escape(tex_to_text(inner), quote=True)
        return f'<{tag} class="{cls}"{rest} data-text="{text}">{inner}</{tag}>'
    return _MATH_HTML.sub(add, body)


#: on the search page, the snippet under each hit takes a formula's words (``data-text``) instead of its TeX
SEARCH_JS = """document.addEventListener('DOMContentLoaded', function () {
  if (typeof Search === 'undefined' || !Search.htmlToText || Search.rharmMath) return;
  var original = Search.htmlToText;
  Search.htmlToText = function (htmlString, anchor) {
    var doc = new DOMParser().parseFromString(htmlString, 'text/html');
    doc.querySelectorAll('.math[data-text]').forEach(function (el) { el.textContent = el.getAttribute('data-text'); });
    return original(doc.documentElement.outerHTML, anchor);
  };
  Search.rharmMath = true;
});"""


_NUMBERED_HREF = re.compile(r'href="([^"#]*)#(id\d+)"')
_NUMBERED_SECTION = re.compile(r'<section id="(id\d+)"')


def numbered_anchors(page_html: str) -> list[str]:
    """Links of a page to an anchor docutils numbered (``bibliography.html#id3``) and sections whose anchor is a
    number (``<section id="id2">``): anchors a reader cannot read or guess."""
    links = [f"{target or '(this page)'}#{anchor}" for target, anchor in _NUMBERED_HREF.findall(page_html)]
    return sorted(set(links)) + [f"section #{a}" for a in _NUMBERED_SECTION.findall(page_html)]


def _label_page(app, pagename, templatename, context, doctree) -> None:
    # the page and its table of contents (a heading with math shows it in the "Contents" sidebar too)
    for key in ("body", "toc"):
        if isinstance(context.get(key), str):
            context[key] = label_math(context[key])


def setup(app):
    app.add_js_file(None, body=SEARCH_JS)
    app.connect("html-page-context", _label_page)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
