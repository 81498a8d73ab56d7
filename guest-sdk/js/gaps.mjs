// What the JS engine of componentize-js lacks, as the build reports it.
//
// componentize-js 0.23 runs StarlingMonkey, a SpiderMonkey built without ICU:
// no Unicode property escapes in regular expressions, no
// String.prototype.normalize, no Intl (locale-sensitive methods such as
// toLocaleUpperCase fall back to locale-independent behaviour). The README
// ("What the engine lacks") lists them; host/tests/polyglot.rs pins each one
// against the built engine, so a kit upgrade that closes a gap fails a test
// until the README and this file are updated.
//
// A property escape in a regular expression literal is a syntax error, and
// the module is parsed when componentize-js pre-initializes it: the build
// fails. `scanSources` finds such literals before componentize-js runs, so
// the build stops at once with the file and line; `explainBuildError`
// shortens what componentize-js reports for anything the scan misses. Uses
// of the gaps that only fail at run time (normalize, Intl) are warnings: code
// may test for them first (`typeof Intl !== 'undefined'`).

export const README = 'guest-sdk/js/README.md, "What the engine lacks"';

const PROPERTY_ESCAPES = 'Unicode property escapes (\\p{...}, \\P{...}) in regular expressions';

const RULES = [
  {
    gap: PROPERTY_ESCAPES,
    fatal: true,
    // An odd number of backslashes before p{ / P{ (an even number is an
    // escaped backslash, as in a string for `new RegExp`), and the line ends
    // a regular expression literal with the u or v flag (without them
    // SpiderMonkey reads \p{L} as the text "p{L}").
    pattern: /(^|[^\\])(\\\\)*\\[pP]\{.*\/[dgimsy]*[uv][dgimsy]*/,
    hint: 'spell the class out instead, e.g. [A-Za-z\\u00C0-\\u024F] for Latin letters',
  },
  {
    gap: 'String.prototype.normalize',
    fatal: false,
    pattern: /\.normalize\s*\(/,
    hint: 'it is missing at run time (TypeError: ... normalize is not a function)',
  },
  {
    gap: 'Intl',
    fatal: false,
    // A use (Intl.X), not a test for it (typeof Intl).
    pattern: /\bIntl\s*\./,
    hint: 'it is undefined at run time (ReferenceError: Intl is not defined)',
  },
];

// The text of a source line without its comments (roughly: a `//` comment
// must start the line or follow a space, so `https://` in a string stays).
function withoutComments(lines) {
  let inBlock = false;
  return lines.map((line) => {
    let out = '';
    let i = 0;
    while (i < line.length) {
      if (inBlock) {
        const end = line.indexOf('*/', i);
        if (end < 0) return out;
        inBlock = false;
        i = end + 2;
      } else if (line.startsWith('/*', i) && (i === 0 || /\s/.test(line[i - 1]))) {
        inBlock = true;
        i += 2;
      } else if (line.startsWith('//', i) && (i === 0 || /\s/.test(line[i - 1]))) {
        return out;
      } else {
        out += line[i];
        i += 1;
      }
    }
    return out;
  });
}

/**
 * Finds uses of the engine's gaps in `files` ({ shown, text }): one finding
 * ({ shown, line, gap, fatal, hint }) per rule and line.
 */
export function scanSources(files) {
  const findings = [];
  for (const { shown, text } of files) {
    withoutComments(text.split('\n')).forEach((line, i) => {
      for (const rule of RULES) {
        if (rule.pattern.test(line)) {
          findings.push({ shown, line: i + 1, gap: rule.gap, fatal: rule.fatal, hint: rule.hint });
        }
      }
    });
  }
  return findings;
}

/** One line per finding, as the build prints it. */
export function describeFinding(f) {
  const what = f.fatal
    ? `${f.gap}: the JS engine does not support them (a syntax error when the module is built); ${f.hint}`
    : `uses ${f.gap}, which the JS engine lacks: ${f.hint}`;
  return `${f.fatal ? 'error' : 'warning'}: ${f.shown}:${f.line}: ${what} (see ${README})`;
}

/**
 * componentize-js' error, shortened: the first `app/FILE:LINE:COL Kind:
 * message` line with FILE as the author wrote it (`showApp` maps the staged
 * path back), plus the gap it comes from when it is a known one. Anything
 * else: the message without the wrapper's first line.
 */
export function explainBuildError(message, showApp) {
  const m = /^app\/(.+?):(\d+):(\d+) (\w*Error): (.*?):?$/m.exec(message);
  if (!m) {
    return `error: componentize-js failed:\n${message.replace(/^Error: /, '').trim()}`;
  }
  const [, file, line, col, kind, text] = m;
  let out = `error: ${showApp(file)}:${line}:${col}: ${kind}: ${text}`;
  if (/property name in regular expression/.test(text)) {
    out += `\n  ${PROPERTY_ESCAPES} are not supported by the JS engine (see ${README})`;
  }
  return out;
}
