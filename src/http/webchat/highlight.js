// A small syntax highlighter for the web chat's code blocks: one table of token rules per
// language (comments, strings, numbers, keywords, types, calls), applied left to right
// with sticky regular expressions. It only ever makes <span class="tok-…"> elements with
// textContent: the code is never parsed as HTML.
"use strict";
(() => {
  const words = (s) => new RegExp("(?:" + s.trim().split(/\s+/).join("|") + ")\\b", "y");
  const C_STR = /"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?/y;
  const NUM = /\b(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)[a-zA-Z0-9_]*\b/y;
  const LINE = (p) => new RegExp(p + ".*", "y");
  const BLOCK = /\/\*[\s\S]*?(?:\*\/|$)/y;
  const CALL = /\b[A-Za-z_]\w*(?=\s*\()/y;
  const TYPE = /\b[A-Z][A-Za-z0-9_]*\b/y;

  const rust = [
    ["com", LINE("//")], ["com", BLOCK],
    ["str", /b?r(#*)"[\s\S]*?(?:"\1|$)/y], ["str", /b?"(?:[^"\\]|\\.)*"?/y], ["str", /b?'(?:[^'\\\n]|\\.)'/y],
    ["kw", words("as async await break const continue crate dyn else enum extern fn for if impl in let loop match mod move mut pub ref return self Self static struct super trait type unsafe use where while yield")],
    ["lit", words("true false None Some Ok Err")], ["num", NUM],
    ["fn", /\b[a-z_]\w*!/y], ["ty", TYPE], ["fn", CALL],
  ];
  const python = [
    ["com", LINE("#")], ["str", /[rbfuRBFU]{0,2}("""|''')[\s\S]*?(?:\1|$)/y], ["str", /[rbfuRBFU]{0,2}(?:"(?:[^"\\\n]|\\.)*"?|'(?:[^'\\\n]|\\.)*'?)/y],
    ["kw", words("and as assert async await break class continue def del elif else except finally for from global if import in is lambda nonlocal not or pass raise return try while with yield match case")],
    ["lit", words("True False None self")], ["num", NUM], ["fn", /@\w+/y], ["ty", TYPE], ["fn", CALL],
  ];
  const js = [
    ["com", LINE("//")], ["com", BLOCK], ["str", /`(?:[^`\\]|\\.)*`?/y], ["str", C_STR],
    ["kw", words("async await break case catch class const continue debugger default delete do else export extends finally for from function if import in instanceof interface let new of return static super switch this throw try type typeof var void while with yield enum implements private protected public readonly")],
    ["lit", words("true false null undefined NaN Infinity")], ["num", NUM], ["ty", TYPE], ["fn", CALL],
  ];
  const json = [["key", /"(?:[^"\\\n]|\\.)*"(?=\s*:)/y], ["str", /"(?:[^"\\\n]|\\.)*"?/y], ["lit", words("true false null")], ["num", /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y]];
  const bash = [
    ["com", /(?:^|(?<=\s))#.*/y], ["str", /"(?:[^"\\]|\\.)*"?|'[^']*'?/y], ["ty", /\$\{[^}\n]*\}?|\$[A-Za-z_]\w*|\$[0-9@#?$!*-]/y],
    ["kw", words("if then else elif fi for while until do done case esac in function return local export readonly set unset shift exit break continue source")],
    ["fn", /(?<=^|[;&|]\s*|\n\s*)[A-Za-z_][\w.-]*(?=\s|$)/y], ["num", /\b\d+\b/y],
  ];
  const toml = [
    ["com", LINE("#")], ["ty", /^\s*\[\[?[^\]\n]*\]\]?/my], ["key", /^\s*[A-Za-z0-9_."-]+(?=\s*=)/my],
    ["str", /"""[\s\S]*?(?:"""|$)|'''[\s\S]*?(?:'''|$)/y], ["str", C_STR], ["lit", words("true false")],
    ["num", /[+-]?\d[\d_:.TZ+-]*(?:[eE][+-]?\d+)?\b/y],
  ];
  const yaml = [
    ["com", /(?:^|(?<=\s))#.*/y], ["key", /^\s*-?\s*[A-Za-z0-9_.\/"' -]+?(?=\s*:(?:\s|$))/my], ["str", C_STR],
    ["lit", words("true false null yes no on off")], ["num", /-?\b\d+(?:\.\d+)?\b/y], ["ty", /[&*][\w-]+|!!?\w+/y],
  ];
  const go = [
    ["com", LINE("//")], ["com", BLOCK], ["str", /`[^`]*`?/y], ["str", C_STR],
    ["kw", words("break case chan const continue default defer else fallthrough for func go goto if import interface map package range return select struct switch type var")],
    ["lit", words("true false nil iota")], ["ty", words("bool byte complex64 complex128 error float32 float64 int int8 int16 int32 int64 rune string uint uint8 uint16 uint32 uint64 uintptr any")],
    ["num", NUM], ["ty", TYPE], ["fn", CALL],
  ];
  const c = [
    ["com", LINE("//")], ["com", BLOCK], ["kw", /#\s*\w+/y], ["str", C_STR],
    ["kw", words("auto break case char const continue default do double else enum extern float for goto if inline int long register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while class namespace template typename public private protected virtual override new delete using try catch throw constexpr nullptr bool")],
    ["lit", words("true false NULL nullptr")], ["num", NUM], ["ty", /\b[a-z_]\w*_t\b/y], ["ty", TYPE], ["fn", CALL],
  ];
  const LANGS = {
    rust, rs: rust, python, py: python, javascript: js, js, jsx: js, typescript: js, ts: js, tsx: js, mjs: js,
    json, jsonc: json, bash, sh: bash, shell: bash, zsh: bash, console: bash, toml, yaml, yml: yaml,
    go, golang: go, c, h: c, cpp: c, "c++": c, cc: c, hpp: c,
  };
  // Code past this length is shown plain: highlighting is for reading, not for megabytes.
  const MAX_CHARS = 100000;

  function highlightInto(code, text, lang) {
    const rules = LANGS[lang];
    if (!rules || text.length > MAX_CHARS) { code.textContent = text; return; }
    let plain = "";
    const flush = () => { if (plain) { code.append(plain); plain = ""; } };
    for (let i = 0; i < text.length;) {
      let hit = null;
      for (const [cls, re] of rules) {
        re.lastIndex = i;
        const m = re.exec(text);
        if (m && m[0].length > 0) { hit = [cls, m[0]]; break; }
      }
      if (hit) {
        flush();
        const span = document.createElement("span");
        span.className = "tok-" + hit[0];
        span.textContent = hit[1];
        code.append(span);
        i += hit[1].length;
      } else {
        // Skip a whole word at once, so a keyword is never matched inside one.
        const w = /[A-Za-z0-9_]+|[\s\S]/y;
        w.lastIndex = i;
        const m = w.exec(text);
        plain += m[0];
        i += m[0].length;
      }
    }
    flush();
  }

  window.PincerHighlight = Object.freeze({ highlightInto, languages: Object.keys(LANGS) });
})();
