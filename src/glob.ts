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
      const negate = glob[i + 1] === '!';
      const first = i + (negate ? 2 : 1);
      // A ']' first in the class is one of its members (POSIX): the class ends at the next one.
      const end = glob.indexOf(']', glob[first] === ']' ? first + 1 : first);
      if (end < 0) re += '\\[';
      else {
        const members = glob.slice(first, end).replace(/[\\\]^]/g, '\\$&');
        // Like * and ?, a class stands for one character of a name, never the '/' between names.
        re += negate ? `[^/${members}]` : `(?!/)[${members}]`;
        i = end;
      }
    } else if (c === '\\' && i + 1 < glob.length) {
      // An escaped character stands for itself: \* is a star.
      re += glob[++i]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
