#!/usr/bin/env node
/**
 * The `pvmw` command. `run(argv, io)` does the work and returns the exit code, so tests call it with fake
 * writers; the bin only wires it to the process. Exit codes: 0 ok, 1 failure, 2 usage or bad input.
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError, Option } from 'commander';
import { DEFAULT_SETTINGS, PvmwError, type DeviceModel, type PvmwErrorCode, type Semantics } from '../index.js';
import { runDemo } from './demo.js';

export interface Writer {
  write(text: string): unknown;
}
export interface Io {
  stdout: Writer;
  stderr: Writer;
}

export const EXIT_OK = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Error codes that mean the user's input was wrong (exit 2); the rest are failures (exit 1). */
const FAILURE_CODES: ReadonlySet<PvmwErrorCode> = new Set(['MEMORY_LIMIT', 'INTERNAL']);

export function exitCodeOf(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
  if (err instanceof PvmwError) return FAILURE_CODES.has(err.code) ? EXIT_FAILURE : EXIT_USAGE;
  return EXIT_FAILURE;
}

/** Digits become a number; anything else is passed on as written, so the engine's message names it. */
function wholeOrText(v: string): number | string {
  return /^\d+$/.test(v) ? Number(v) : v;
}

function program(io: Io, setCode: (code: number) => void): Command {
  const p = new Command('pvmw')
    .description('Simulate Linux page tables, folios, device-private memory and page_vma_mapped_walk in WebAssembly')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(s), writeErr: (s) => void io.stderr.write(s) })
    .showHelpAfterError('(pvmw --help for usage)');

  p.command('demo')
    .description('build the default space and print what it holds, page-table translations, and what page_vma_mapped_walk finds in each interface')
    .addOption(new Option('--paging <levels>', 'paging levels, 4 or 5').default(String(DEFAULT_SETTINGS.paging), String(DEFAULT_SETTINGS.paging)))
    .addOption(new Option('--device-model <model>', 'device-private pages named by pfn or by offset').default(DEFAULT_SETTINGS.deviceModel, DEFAULT_SETTINGS.deviceModel))
    .addOption(new Option('--semantics <kernel>', 'kernel semantics: newest, series or v6.14').default(DEFAULT_SETTINGS.semantics, DEFAULT_SETTINGS.semantics))
    .option('--json', 'print one JSON object (u64 values as "0x…" strings)')
    .action((o: { paging: string; deviceModel: string; semantics: string; json?: boolean }) => {
      // The engine validates the settings (one validator: src/model/settings.ts); a bad value is BAD_SETTING.
      const text = runDemo({
        engine: {
          paging: wholeOrText(o.paging) as 4 | 5,
          deviceModel: o.deviceModel as DeviceModel,
          semantics: o.semantics as Semantics,
        },
        json: o.json === true,
      });
      io.stdout.write(text);
      setCode(EXIT_OK);
    });
  return p;
}

/** Run the command line `argv` (without node and script); returns the exit code. Never exits the process. */
export async function run(argv: readonly string[], io: Io): Promise<number> {
  let code = EXIT_OK;
  try {
    const p = program(io, (c) => (code = c));
    if (argv.length === 0) {
      io.stderr.write(p.helpInformation());
      return EXIT_USAGE;
    }
    await p.parseAsync([...argv], { from: 'user' });
    return code;
  } catch (err) {
    const exit = exitCodeOf(err);
    if (err instanceof CommanderError) return exit; // commander has written its message
    if (err instanceof PvmwError) io.stderr.write(`pvmw: ${err.message} (${err.code})\n`);
    else io.stderr.write(`pvmw: internal error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return exit;
  }
}

/** True when this file is the script node was started with (directly or through the npm bin link). */
function isMain(): boolean {
  const script = process.argv[1];
  if (!script) return false;
  try {
    return realpathSync(script) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  process.exitCode = await run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr });
}
