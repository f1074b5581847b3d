/**
 * Progress goes to stderr (so `--json` output on stdout stays clean), each line with the elapsed time.
 * Nothing here ever receives a secret: callers pass step names, sizes and counts only.
 */
const started = Date.now();
let quiet = false;

export function setQuiet(value: boolean): void {
  quiet = value;
}

export function progress(message: string): void {
  if (!quiet) {
    const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
    process.stderr.write(`[${seconds}s] ${message}\n`);
  }
}

export function say(message: string): void {
  process.stdout.write(`${message}\n`);
}

export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

/** A problem that does not fail the command (e.g. an off-host copy that will be retried). */
export function warn(message: string): void {
  process.stderr.write(`warning: ${message}\n`);
}

/** The last line of a tool's output: usually the one that says what went wrong. */
export function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}
