import { InvalidOptionsError } from './errors.ts';

/**
 * --exclude patterns: `*` and `?` within one path segment, `**` across segments, `[...]` classes.
 * A pattern with no `/` matches a name at any depth (`*.tmp`, `.git`, `node_modules`); one with a
 * `/` matches the path relative to the folder (`logs/**`, `build/*.o`). A trailing `/` matches
 * folders only (`node_modules/`, `build/`), as in .gitignore. A folder that matches is not entered.
 * A pattern that cannot be compiled is an InvalidOptionsError.
 */
export function globMatcher(patterns: readonly string[]): (relPath: string, isDir?: boolean) => boolean {
  const compiled = patterns.map((raw) => {
    const dirOnly = raw.endsWith('/');
    const p = raw.replace(/^\/+/, '').replace(/\/+$/, '');
    let re: RegExp;
    try {
      re = globToRegExp(p);
    } catch (err) {
      throw new InvalidOptionsError(`exclude pattern ${JSON.stringify(raw)} is not a valid glob: ${(err as Error).message}`);
    }
    return { anyDepth: !p.includes('/'), dirOnly, re };
  });
  return (relPath, isDir = false) => {
    const name = relPath.slice(relPath.lastIndexOf('/') + 1);
    return compiled.some((c) => (!c.dirOnly || isDir) && (c.re.test(relPath) || (c.anyDepth && c.re.test(name))));
  };
}

export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        // "**/" matches zero or more whole segments; a trailing "**" everything below.
        const slash = glob[i + 2] === '/';
        re += slash ? '(?:.*/)?' : '.*';
        i += slash ? 2 : 1;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const cls = bracketClass(glob, i);
      if (cls) {
        re += cls.re;
        i = cls.end;
      } else re += '\\[';
    } else if (c === '\\' && i + 1 < glob.length) {
      // An escaped character stands for itself: \* is a star.
      re += glob[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

/**
 * The bracket class opening at `glob[start]`, as bash and git's wildmatch read it: '!' or '^' first
 * negates, a ']' first is a member, '\\' escapes the next character; undefined when it never closes
 * (the '[' is then literal). Like * and ?, a class stands for one character of a name, never '/'.
 */
function bracketClass(glob: string, start: number): { re: string; end: number } | undefined {
  let i = start + 1;
  const negate = glob[i] === '!' || glob[i] === '^';
  if (negate) i++;
  let members = '';
  for (let first = true; i < glob.length; i++, first = false) {
    let c = glob[i]!;
    if (c === ']' && !first) return { re: negate ? `[^/${members}]` : `(?!/)[${members}]`, end: i };
    const escaped = c === '\\' && i + 1 < glob.length;
    if (escaped) c = glob[++i]!;
    // In the RegExp class these would mean something else; an unescaped '-' stays a range.
    members += /[\\\]\[^]/.test(c) || (escaped && c === '-') ? `\\${c}` : c;
  }
  return undefined;
}
