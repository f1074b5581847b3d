/**
 * `npm run docs`: writes Pulumi.yaml's `config:` block and docs/settings.md from the settings schema
 * (model/config/), so neither can say something the validation does not do. The rendering is pure
 * (`renderDocs`); tests/unit/model/settings-docs.test.ts compares it with the committed files.
 */
import * as fs from "fs";
import * as path from "path";
import * as prettier from "prettier";
import * as YAML from "yaml";
import { ENVIRONMENTS } from "../model/config/environments";
import {
  FieldReference,
  PerEnvironment,
  SettingReference,
  settingsReference,
} from "../model/config/reference";

export const REPO_ROOT = path.resolve(__dirname, "..");

/** A value as one would write it in a stack file's flow style, e.g. `{keep: 14, schedule: "@daily"}`. */
export function flow(value: unknown): string {
  if (Array.isArray(value)) {
    return `[${value.map(flow).join(", ")}]`;
  }
  if (value !== null && typeof value === "object") {
    return `{${Object.entries(value)
      .map(([k, v]) => `${k}: ${flow(v)}`)
      .join(", ")}}`;
  }
  return typeof value === "string" && !/^[\w@./:-]+$/.test(value)
    ? JSON.stringify(value)
    : String(value);
}

/** The one default every environment shares, or undefined when they differ (or there is none). */
export function sharedDefault(defaults: PerEnvironment): unknown {
  const [first, ...rest] = ENVIRONMENTS.map((e) => JSON.stringify(defaults[e]));
  return rest.every((d) => d === first) && first !== undefined ? JSON.parse(first) : undefined;
}

/** Per environment, only the fields whose defaults differ: what is common is said once. */
function defaultsByEnvironment(defaults: PerEnvironment): string {
  const objects = ENVIRONMENTS.map((e) => (defaults[e] ?? {}) as Record<string, unknown>);
  const keys = Object.keys(objects[0]);
  const differs = (k: string) => new Set(objects.map((o) => JSON.stringify(o[k]))).size > 1;
  const pick = (o: Record<string, unknown>, keep: boolean) =>
    Object.fromEntries(Object.entries(o).filter(([k]) => differs(k) === keep));
  const perEnvironment = ENVIRONMENTS.map((e, i) => `${e} ${flow(pick(objects[i], true))}`);
  const common = pick(objects[0], false);
  return `${perEnvironment.join("; ")}${keys.some((k) => !differs(k)) ? `; all ${flow(common)}` : ""}`;
}

/** The key's own production rule and its fields'. */
export function productionRules(ref: SettingReference): string[] {
  return [
    ...(ref.production ? [ref.production] : []),
    ...ref.fields.filter((f) => f.production).map((f) => `\`${f.name}\` ${f.production}`),
  ];
}

function pulumiEntry(ref: SettingReference): Record<string, unknown> {
  const shared = sharedDefault(ref.defaults);
  const rules = productionRules(ref);
  const optional = ENVIRONMENTS.every((e) => ref.defaults[e] === undefined);
  const varies = !ref.required && shared === undefined && !ref.secret && !optional;
  const description = [
    ref.description,
    ...(rules.length ? [`On production: ${rules.join("; ")}.`] : []),
    ...(varies ? [`Defaults: ${defaultsByEnvironment(ref.defaults)}.`] : []),
  ].join(" ");
  return {
    type: ref.type,
    ...(shared !== undefined ? { default: shared } : {}),
    ...(ref.secret ? { secret: true } : {}),
    description,
  };
}

/** Pulumi.yaml with its `config:` block (the file's last top-level key) rewritten; the rest kept byte for byte. */
export function withConfigBlock(current: string, refs: readonly SettingReference[]): string {
  const start = current.search(/^config:/m);
  if (start < 0) {
    throw new Error("Pulumi.yaml has no top-level `config:` block");
  }
  const rest = current.slice(start + "config:".length);
  const next = rest.search(/^\S/m);
  const config = Object.fromEntries(refs.map((r) => [r.key, pulumiEntry(r)]));
  const block = YAML.stringify({ config }, { lineWidth: 0 });
  return current.slice(0, start) + block + (next < 0 ? "" : rest.slice(next));
}

/** Text for a Markdown table cell: `<prefix>` must not read as HTML, `|` must not end the cell. */
function cell(text: string): string {
  return text
    .split(/(`[^`]*`)/)
    .map((part, i) => (i % 2 ? part : part.replace(/</g, "&lt;").replace(/>/g, "&gt;")))
    .join("")
    .replace(/\|/g, "\\|");
}

function typeText(f: FieldReference): string {
  return f.values ? `${f.type}: ${f.values.map((v) => `\`${v}\``).join(", ")}` : f.type;
}

function defaultText(f: FieldReference, required = false): string {
  if (required) {
    return "required";
  }
  const shared = sharedDefault(f.defaults);
  if (shared !== undefined) {
    return `\`${flow(shared)}\``;
  }
  const values = ENVIRONMENTS.map((e) => f.defaults[e]);
  if (values.every((v) => v === undefined)) {
    return f.secret ? "unset" : "unset (optional)";
  }
  return ENVIRONMENTS.map((e) => `${e}: \`${flow(f.defaults[e])}\``).join("<br>");
}

function keySection(ref: SettingReference): string[] {
  const rules = productionRules(ref);
  const lines = [
    `## \`${ref.key}\``,
    "",
    cell(ref.description),
    "",
    `- Type: ${typeText(ref)}${ref.secret ? " (secret: `pulumi config set --secret`)" : ""}`,
    ref.fields.length && sharedDefault(ref.defaults) === undefined && !ref.required
      ? "- Default: per field, below"
      : `- Default: ${defaultText(ref, ref.required)}`,
    `- On production: ${ref.production ?? (rules.length ? "see the fields below" : "as elsewhere")}`,
  ];
  if (ref.fields.length) {
    lines.push("", "| Field | Type | Default | Description | On production |");
    lines.push("| --- | --- | --- | --- | --- |");
    for (const f of ref.fields) {
      lines.push(
        `| \`${f.name}\` | ${typeText(f)} | ${defaultText(f)} | ${cell(f.description)} | ${f.production ? cell(f.production) : ""} |`,
      );
    }
  }
  return [...lines, ""];
}

function summaryRow(r: SettingReference): string {
  const shared = sharedDefault(r.defaults);
  const anyDefault = ENVIRONMENTS.some((e) => r.defaults[e] !== undefined);
  const fallback = r.required ? "required" : anyDefault ? "by environment" : "unset";
  const defaults = shared !== undefined ? `\`${flow(shared)}\`` : fallback;
  const anchor = r.key.replace(/:/g, "").toLowerCase();
  const rules = productionRules(r).length ? `[restricted](#${anchor})` : "as elsewhere";
  return `| [\`${r.key}\`](#${anchor}) | ${cell(typeText(r))} | ${defaults} | ${rules} |`;
}

function settingsMarkdown(refs: readonly SettingReference[]): string {
  return [
    "# Settings reference",
    "",
    "<!-- Generated by `npm run docs` from model/config/ (the settings schema). Do not edit by hand: a unit test fails when this file differs from what the schema says. -->",
    "",
    "Every `edms:*` key a stack may set, as `validateSettings` applies it (the program and edms-ops alike). Set a key with `pulumi config set edms:<key> <value>`, a field of an object key with `pulumi config set --path edms:<key>.<field> <value>`, and anything secret with `--secret`. Keys not listed here are refused, as is any field an object does not list.",
    "",
    "| Key | Type | Default | On production |",
    "| --- | --- | --- | --- |",
    ...refs.map(summaryRow),
    "",
    ...refs.flatMap(keySection),
  ].join("\n");
}

/** The generated files as `npm run docs` would write them now, given Pulumi.yaml as it is. */
export async function renderDocs(currentPulumiYaml: string): Promise<Record<string, string>> {
  const refs = settingsReference();
  const texts: Record<string, string> = {
    "Pulumi.yaml": withConfigBlock(currentPulumiYaml, refs),
    "docs/settings.md": settingsMarkdown(refs),
  };
  // As `npm run lint` wants them, so the check and the generator never disagree on whitespace.
  for (const [file, text] of Object.entries(texts)) {
    const filepath = path.join(REPO_ROOT, file);
    const options = (await prettier.resolveConfig(filepath)) ?? {};
    texts[file] = await prettier.format(text, { ...options, filepath });
  }
  return texts;
}

async function main(): Promise<void> {
  const current = fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8");
  for (const [file, text] of Object.entries(await renderDocs(current))) {
    const target = path.join(REPO_ROOT, file);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    const changed = !fs.existsSync(target) || fs.readFileSync(target, "utf8") !== text;
    if (changed) {
      fs.writeFileSync(target, text);
    }
    console.log(`${changed ? "wrote" : "unchanged"} ${file}`);
  }
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(err.message);
    process.exit(1);
  });
}
