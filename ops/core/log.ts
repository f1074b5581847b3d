/**
 * Progress goes to stderr (so `--json` output on stdout stays clean), each line with the elapsed time.
 * Callers pass step names, sizes and counts, never a secret; but some lines are other programs' output (a
 * release's `migrate`, a tool's error), so every line leaves through `scrub`: a deploy hook's output reaches
 * Pulumi's log and the CI log whenever the hook fails, whatever its logging setting.
 */
import { repositorySecrets } from "../../model/config/backup";

const started = Date.now();
let quiet = false;

export function setQuiet(value: boolean): void {
  quiet = value;
}

/** Variables whose values are secrets (components/hooks.ts HookSecrets, and the off-host delete credentials). */
const SECRET_VARIABLES = [
  "EDMS_POSTGRES_PASSWORD",
  "EDMS_DJANGO_SECRET_KEY",
  "EDMS_REDIS_PASSWORD",
  "EDMS_SUPERUSER_PASSWORD",
  "EDMS_APP_DB_PASSWORD",
  "EDMS_BACKUP_DB_PASSWORD",
  "EDMS_RESTIC_PASSWORD",
  "EDMS_DATABASE_PASSWORD",
  "EDMS_MEDIA_SECRET_KEY",
];
/** Off-host repository URLs: only their password (`//user:password@`) and query string are secret. */
const REPOSITORY_VARIABLES = ["EDMS_OFFSITE_REPOSITORY", "EDMS_OFFSITE_DELETE_REPOSITORY"];
/**
 * JSON objects of the off-host backend's variables: those whose names say credential are secret; the rest
 * are settings (`AWS_DEFAULT_REGION`, `OS_INTERFACE=public`) whose values are ordinary words.
 */
const SECRET_JSON_VARIABLES = ["EDMS_OFFSITE_ENV", "EDMS_OFFSITE_DELETE_ENV"];
const CREDENTIAL_NAME = /SECRET|PASSW|TOKEN|KEY|CREDENTIAL|AUTH/;
/** Shorter values are not looked for: they would blank ordinary words out of every line. */
const SHORTEST_SECRET = 6;

/** The secret values in `env`, longest first (a secret containing another is replaced whole). */
export function secretValues(env: NodeJS.ProcessEnv): string[] {
  const values: string[] = SECRET_VARIABLES.map((name) => env[name] ?? "");
  for (const name of REPOSITORY_VARIABLES) {
    values.push(...repositorySecrets(env[name] ?? ""));
  }
  for (const name of SECRET_JSON_VARIABLES) {
    try {
      const parsed: unknown = JSON.parse(env[name] ?? "{}");
      if (parsed && typeof parsed === "object") {
        for (const [key, value] of Object.entries(parsed)) {
          if (CREDENTIAL_NAME.test(key) && typeof value === "string") {
            values.push(value);
          }
        }
      }
    } catch {
      // Refused where it is read (keys.ts), by its name.
    }
  }
  return [...new Set(values.filter((v) => v.length >= SHORTEST_SECRET))].sort(
    (a, b) => b.length - a.length,
  );
}

let secrets: string[] | undefined;

/**
 * `text` with every control character but tab and newline shown as `?`: names and messages from outside
 * (media file names, database values, a tool's output) cannot move the cursor, recolour a terminal or
 * rewrite a line (a carriage return) of what an operator reads.
 */
export function printable(text: string): string {
  return (
    text
      .replace(/\r\n/g, "\n")
      // Controls but tab and newline; C1; line and paragraph separators; bidirectional overrides.
      .replace(
        /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g,
        "?",
      )
  );
}

/**
 * `text` with every secret value this process was given (of SHORTEST_SECRET characters or more, as it was
 * given: not one escaped inside JSON) replaced by `[secret]`, and only printable characters, tab and newline
 * (`printable`).
 */
export function scrub(text: string): string {
  secrets ??= secretValues(process.env);
  let clean = printable(text);
  for (const secret of secrets) {
    if (clean.includes(secret)) {
      clean = clean.split(secret).join("[secret]");
    }
  }
  return clean;
}

export function progress(message: string): void {
  if (!quiet) {
    const seconds = ((Date.now() - started) / 1000).toFixed(1).padStart(5);
    process.stderr.write(scrub(`[${seconds}s] ${message}\n`));
  }
}

export function say(message: string): void {
  process.stdout.write(scrub(`${message}\n`));
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
  process.stderr.write(scrub(`warning: ${message}\n`));
}

/** The last line of a tool's output: usually the one that says what went wrong. */
export function lastLine(text: string): string {
  return text.trim().split("\n").pop() ?? "";
}
