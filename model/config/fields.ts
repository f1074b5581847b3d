/**
 * Building blocks of the settings schema: value shapes that several keys share, and the metadata each key
 * carries beyond zod's own checks (the fix shown with an error, the production rule shown in the docs).
 */
import { z } from "zod";

/** What a key's schema carries for the error messages and the generated reference (docs/settings.md). */
export interface SettingMeta {
  readonly description: string;
  /** Appended to every problem with the key, so the operator reads how to fix it. */
  readonly fix?: string;
  /**
   * What production demands beyond the schema (validate.ts enforces it), shown in the reference: a phrase
   * that follows the name, e.g. "cannot be `false`: …", without a full stop.
   */
  readonly production?: string;
  /** Kept encrypted in the stack file (`pulumi config set --secret`). */
  readonly secret?: boolean;
}

/** Attaches `meta` outermost, where `settingMeta` (and `z.toJSONSchema`) look for it. */
export function setting<T extends z.ZodType>(schema: T, meta: SettingMeta): T {
  return schema.meta({ ...meta });
}

export function settingMeta(schema: z.ZodType): SettingMeta {
  const meta = schema.meta() as Partial<SettingMeta> | undefined;
  if (typeof meta?.description !== "string") {
    throw new Error("a setting without a description: give it one with setting()");
  }
  return meta as SettingMeta;
}

export const nonEmpty = (what: string) =>
  z
    .string({ error: `must be ${what}` })
    .trim()
    .min(1, `must be ${what}`);

// Pulumi config values arrive as strings unless the stack file holds a YAML number.
export const integer = z.union(
  [
    z.number(),
    z
      .string()
      .regex(/^-?\d+$/)
      .transform(Number),
  ],
  {
    error: "must be a whole number",
  },
);

export const port = integer.pipe(
  z.number().int().min(1, "must be 1–65535").max(65535, "must be 1–65535"),
);

export const pemFile = (what: string) =>
  z
    .string({ error: `${what} must be a file path` })
    .trim()
    .min(1, `${what} must be a file path`)
    .refine(
      (p) => !p.includes("-----BEGIN"),
      `${what} must be a file path, not the PEM text itself`,
    );

/** A value from the stack file that Pulumi keeps encrypted: `{secure: "v1:..."}`. */
const encrypted = z.object({ secure: z.string() }).strict();

export const maybeSecret = (what: string) =>
  z.union([z.string({ error: `must be ${what}` }).min(1, `must be ${what}`), encrypted], {
    error: `must be ${what}`,
  });

export function parseJsonish(value: unknown): unknown {
  // `pulumi config set --path` and the Config API both hand structured values over as JSON text.
  if (typeof value === "string" && /^\s*[[{]/.test(value)) {
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }
  return value;
}

const DURATION = /^(\d+(?:\.\d+)?)(m|h|d)$/;
const UNIT_MS = { m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

/** `30m`, `6h`, `2d` in milliseconds; null for anything else (`off` included). */
export function durationMs(text: string): number | null {
  const match = DURATION.exec(text.trim());
  return match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : null;
}
