/**
 * The settings as data for a reader rather than a validator: each `edms:*` key with its type, its default in
 * every environment, description and production rule, all read from the schema. `npm run docs`
 * (scripts/gen-docs.ts) renders Pulumi.yaml's `config:` block and docs/settings.md from it.
 */
import { z } from "zod";
import { ENVIRONMENTS, Environment } from "./environments";
import { settingMeta } from "./fields";
import { SECRET_SETTINGS, settingsSchema } from "./schema";

/** A value per environment; `undefined` where there is none (required, optional, or Pulumi's own). */
export type PerEnvironment = Record<Environment, unknown>;

export interface FieldReference {
  readonly name: string;
  /** JSON Schema's name for it: string, integer, boolean, object, array. */
  readonly type: string;
  /** The allowed values, when the type is an enumeration. */
  readonly values?: readonly string[];
  readonly defaults: PerEnvironment;
  readonly description: string;
  readonly production?: string;
  readonly secret: boolean;
}

export interface SettingReference extends FieldReference {
  /** `edms:<name>`, as Pulumi names it. */
  readonly key: string;
  /** A stack must set it: the schema takes no default for it. */
  readonly required: boolean;
  /** The fields of an object value, in the schema's order. */
  readonly fields: readonly FieldReference[];
}

function typeOf(schema: z.ZodType): { type: string; values?: string[] } {
  // The output side names what a value becomes (integer, not "number or digits"); the input side covers
  // what has no output schema (a transform).
  for (const io of ["output", "input"] as const) {
    const schemaJson = z.toJSONSchema(schema, { io, unrepresentable: "any" }) as {
      type?: string;
      enum?: string[];
      anyOf?: { type?: string }[];
    };
    // A value that may be given encrypted (`maybeSecret`: a string or `{secure}`) is named by its plain form.
    const json = schemaJson.type ? schemaJson : (schemaJson.anyOf?.[0] ?? schemaJson);
    if (json.type) {
      const values = (json as { enum?: string[] }).enum;
      return { type: json.type, ...(values ? { values } : {}) };
    }
  }
  throw new Error("a setting whose type JSON Schema cannot name");
}

function field(name: string, schema: z.ZodType, defaults: PerEnvironment): FieldReference {
  const meta = settingMeta(schema);
  return {
    name,
    ...typeOf(schema),
    defaults,
    description: meta.description,
    ...(meta.production ? { production: meta.production } : {}),
    secret: meta.secret === true,
  };
}

/** What each environment gets for a key the stack leaves out: the schema applied to nothing. */
function defaultsOf(key: string): PerEnvironment {
  const entries = ENVIRONMENTS.map((environment) => {
    const schema = (settingsSchema(environment).shape as Record<string, z.ZodType>)[key];
    const parsed = schema?.safeParse(undefined);
    return [environment, parsed?.success ? parsed.data : undefined];
  });
  return Object.fromEntries(entries) as PerEnvironment;
}

function fieldsOf(schema: z.ZodType, defaults: PerEnvironment): FieldReference[] {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as {
    properties?: object;
  };
  if (!json.properties) {
    return [];
  }
  // The object inside `.prefault()` (and inside a `.transform()` on it): its shape holds the fields with
  // their own metadata.
  const inner = (schema as unknown as { def: { innerType: z.ZodType } }).def.innerType;
  const object = (inner instanceof z.ZodPipe ? inner.def.in : inner) as z.ZodObject;
  return Object.entries(object.shape as Record<string, z.ZodType>).map(([name, sub]) => {
    const perEnvironment = Object.fromEntries(
      ENVIRONMENTS.map((e) => [e, (defaults[e] as Record<string, unknown> | undefined)?.[name]]),
    ) as PerEnvironment;
    return field(name, sub, perEnvironment);
  });
}

/** Every key Pulumi.yaml declares, in its order. */
export function settingsReference(): SettingReference[] {
  const shape = settingsSchema("production").shape as Record<string, z.ZodType>;
  const configured = Object.entries(shape).map(([name, schema]): SettingReference => {
    const defaults = defaultsOf(name);
    return {
      key: `edms:${name}`,
      ...field(name, schema, defaults),
      // Required: nothing is accepted in its place (an optional key takes `undefined`, a defaulted one its default).
      required: ENVIRONMENTS.every(
        (e) =>
          !(settingsSchema(e).shape as Record<string, z.ZodType>)[name].safeParse(undefined)
            .success,
      ),
      fields: fieldsOf(schema, defaults),
    };
  });
  const secret = Object.entries(SECRET_SETTINGS).map(([name, schema]): SettingReference => ({
    key: `edms:${name}`,
    ...field(name, schema, { dev: undefined, staging: undefined, production: undefined }),
    required: false,
    fields: [],
  }));
  return [...configured, ...secret];
}
