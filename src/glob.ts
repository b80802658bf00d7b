/**
 * --exclude patterns: `*` and `?` within one path segment, `**` across segments, `[...]` classes.
 * A pattern with no `/` matches a name at any depth (`*.tmp`, `.git`, `node_modules`); one with a
 * `/` matches the path relative to the folder (`logs/**`, `build/*.o`). A directory that matches is
 * not entered.
 */
export function globMatcher(patterns: readonly string[]): (relPath: string) => boolean {
  const compiled = patterns.map((p) => ({ anyDepth: !p.includes('/'), re: globToRegExp(p.replace(/^\/+/, '')) }));
  return (relPath) => {
    const name = relPath.slice(relPath.lastIndexOf('/') + 1);
    return compiled.some((c) => c.re.test(relPath) || (c.anyDepth && c.re.test(name)));
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
      const end = glob.indexOf(']', i + 1);
      if (end < 0) re += '\\[';
      else {
        const body = glob.slice(i + 1, end).replace(/\\/g, '\\\\');
        re += `[${body.startsWith('!') ? `^${body.slice(1)}` : body}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
