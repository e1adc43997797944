// The README's library example runs as written (against the built package, as a user would import it) and
// prints what its comments say.
import { describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

describe('README', () => {
  it('the library example runs and prints what its comments say', () => {
    const blocks = [...readFileSync(`${root}/README.md`, 'utf8').matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]);
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    // One program: the first block's imports, then every block without its import lines.
    const imports = new Set(blocks.flatMap((b) => b.split('\n').filter((l) => l.startsWith('import '))));
    const body = blocks.map((b) => b.split('\n').filter((l) => !l.startsWith('import ')).join('\n')).join('\n');
    const names = [...imports].flatMap((l) => l.replace(/import \{(.*)\} from 'pvmw';/, '$1').split(',').map((s) => s.trim()));
    const program = `import { ${[...new Set(names)].join(', ')} } from 'pvmw';\n${body}`;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', program], { cwd: root, encoding: 'utf8' });
    // Each console.log line's comment is the output it promises.
    const promised = body.split('\n').filter((l) => l.includes('console.log') && l.includes('// ')).map((l) => l.slice(l.indexOf('// ') + 3).trim());
    expect(promised.length).toBeGreaterThanOrEqual(5);
    for (const p of promised) expect(out.replace(/\s+/g, ' ')).toContain(p.replace(/\s+/g, ' '));
  });
});
