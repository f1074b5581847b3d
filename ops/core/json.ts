/**
 * JSON from outside this process (files in the backups volume, container and tool output, the environment)
 * is checked against a schema before anything uses it: a torn write, an older format or a hostile edit
 * becomes a clear error (or a skipped line) instead of an undefined deep inside an operation.
 */
import { z } from "zod";
import { failure } from "./errors";

/** Parses `text` as JSON of the schema's shape; a failure names `what` and the first problem. */
export function parseJson<S extends z.ZodType>(text: string, schema: S, what: string): z.output<S> {
  const parsed = tryParseJson(text, schema);
  if (!parsed.ok) {
    throw failure(
      `${what} is not what edms-ops expects: ${parsed.problem}.`,
      "Retry once; if it repeats, check the component named above (`docker logs`, `edms-ops status`) and report the output.",
    );
  }
  return parsed.value;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; problem: string };

export function tryParseJson<S extends z.ZodType>(text: string, schema: S): Parsed<z.output<S>> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return { ok: false, problem: `not JSON (${(err as Error).message})` };
  }
  const result = schema.safeParse(raw);
  if (!result.success) {
    const issue = result.error.issues[0];
    return {
      ok: false,
      problem: `${issue.path.length ? `${issue.path.join(".")}: ` : ""}${issue.message}`,
    };
  }
  return { ok: true, value: result.data };
}

/** JSON or null: for records where absent and unreadable mean the same (a torn marker is no marker). */
export function parseJsonOrNull<S extends z.ZodType>(text: string, schema: S): z.output<S> | null {
  if (!text.trim()) {
    return null;
  }
  const parsed = tryParseJson(text, schema);
  return parsed.ok ? parsed.value : null;
}

/** One record per line; torn or foreign lines (a killed append, an older format) are skipped. */
export function parseJsonLines<S extends z.ZodType>(text: string, schema: S): z.output<S>[] {
  return text
    .split("\n")
    .filter((line) => line.trim())
    .flatMap((line) => {
      const parsed = tryParseJson(line, schema);
      return parsed.ok ? [parsed.value] : [];
    });
}
