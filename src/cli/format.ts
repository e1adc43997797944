/**
 * Formatting helpers of the presentation layer (DESIGN.md §2: src/cli only presents): hex numbers, byte
 * sizes, and plain-text tables. Nothing here knows about the simulation.
 */
import { hex } from '../errors.js';

export { hex };

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'] as const;

/** Bytes as B / KiB / MiB / GiB / TiB: whole numbers stay whole ("64 MiB"), others get one decimal ("1.5 KiB"). */
export function bytes(n: number): string {
  let v = n;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < UNITS.length - 1) {
    v /= 1024;
    u++;
  }
  const text = Number.isInteger(v) ? String(v) : v.toFixed(1);
  return `${text} ${UNITS[u]}`;
}

/** A ratio with up to two decimals, e.g. bytes per entry ("12.5"); "-" when the divisor is 0. */
export function ratio(a: number, b: number): string {
  if (b === 0) return '-';
  const r = a / b;
  return Number.isInteger(r) ? String(r) : r.toFixed(2);
}

export type Align = 'left' | 'right';

export interface Column {
  header: string;
  align?: Align;
}

/** Rows of cells padded to each column's widest cell, separated by two spaces, each line starting with `indent`. */
export function grid(rows: readonly (readonly (string | number)[])[], indent = '  ', align: readonly Align[] = []): string[] {
  const cells = rows.map((r) => r.map(String));
  const n = Math.max(0, ...cells.map((r) => r.length));
  const widths = Array.from({ length: n }, (_, i) => Math.max(0, ...cells.map((r) => (r[i] ?? '').length)));
  return cells.map(
    (r) =>
      indent +
      widths
        .map((w, i) => (align[i] === 'right' ? (r[i] ?? '').padStart(w) : (r[i] ?? '').padEnd(w)))
        .join('  ')
        .trimEnd(),
  );
}

/** A plain-text table: a header row, a rule, then the rows (no trailing newline). */
export function table(columns: readonly Column[], rows: readonly (readonly (string | number)[])[], indent = '  '): string {
  const align = columns.map((c) => c.align ?? 'left');
  const lines = grid([columns.map((c) => c.header), ...rows], indent, align);
  const widths = columns.map((c, i) => Math.max(c.header.length, ...rows.map((r) => String(r[i] ?? '').length)));
  const rule = indent + widths.map((w) => '-'.repeat(w)).join('  ');
  return [lines[0], rule, ...lines.slice(1)].join('\n');
}

/** Key/value lines ("  key    value"), keys padded to the widest. */
export function pairs(rows: readonly (readonly [string, string | number])[], indent = '  '): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}`).join('\n');
}

