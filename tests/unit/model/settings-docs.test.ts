/**
 * Pulumi.yaml's `config:` block and docs/settings.md are generated from the settings schema (`npm run
 * docs`); these tests fail when either is stale, or when what they say drifts from what validation does.
 */
import { expect } from "chai";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { z } from "zod";
import {
  flow,
  REPO_ROOT,
  renderDocs,
  sharedDefault,
  withConfigBlock,
} from "../../../scripts/gen-docs";
import { settingsReference } from "../../../model/config/reference";
import {
  ConfigError,
  DerivedSettings,
  ENVIRONMENTS,
  KNOWN_KEYS,
  Settings,
  SettingsSchema,
  settingsSchema,
  validateSettings,
} from "../../../model/settings";

const read = (file: string) => fs.readFileSync(path.join(REPO_ROOT, file), "utf8");
// Production serves HTTPS: the least it takes is one of the two ways and its host names.
const PRODUCTION_HTTPS = { tlsUpstream: true, django: { allowedHosts: ["edms.example.com"] } };
const minimal = (environment: string) =>
  validateSettings(environment, {
    environment,
    version: "1",
    ...(environment === "production" ? PRODUCTION_HTTPS : {}),
  });

// Checked by `tsc --noEmit` (npm run typecheck): Settings has exactly the schema's keys plus the derived ones.
type Equal<A, B> =
  (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
const settingsKeysAreTheSchemas: Equal<
  keyof Settings,
  keyof z.output<SettingsSchema> | keyof DerivedSettings
> = true;

describe("settings docs (npm run docs)", function () {
  it("Pulumi.yaml and docs/settings.md are what the schema says now", async function () {
    const rendered = await renderDocs(read("Pulumi.yaml"));
    for (const [file, text] of Object.entries(rendered)) {
      expect(read(file) === text, `${file} is out of date: run npm run docs`).to.equal(true);
    }
  });

  it("Pulumi.yaml declares exactly the keys validation knows, and no others", function () {
    const config = YAML.parse(read("Pulumi.yaml")).config as Record<string, unknown>;
    expect(Object.keys(config)).to.deep.equal(KNOWN_KEYS.map((k) => `edms:${k}`));
    expect(KNOWN_KEYS).to.deep.equal([
      ...["environment", "version", "backendImage", "releaseDigest", "postgresImage", "redisImage"],
      "namePrefix",
      ...[
        "dataGeneration",
        "httpPort",
        "bindAddress",
        "tlsUpstream",
        "healthWaitSeconds",
        "backup",
        "bootstrap",
        "proxy",
      ],
      ...["django", "alerts", "database", "media", "limits"],
      "superuserPassword",
    ]);
  });

  it("Pulumi.yaml's defaults are what validation applies to a minimal dev stack", function () {
    const config = YAML.parse(read("Pulumi.yaml")).config as Record<string, { default?: unknown }>;
    const dev = minimal("dev") as unknown as Record<string, unknown>;
    const declared = Object.entries(config).filter(([, entry]) => "default" in entry);
    expect(declared.length).to.be.greaterThan(5);
    for (const [key, entry] of declared) {
      expect(dev[key.slice("edms:".length)], key).to.deep.equal(entry.default);
    }
  });

  it("the reference's defaults are what validation applies in every environment", function () {
    for (const environment of ENVIRONMENTS) {
      const settings = minimal(environment) as unknown as Record<string, unknown>;
      const given = environment === "production" ? Object.keys(PRODUCTION_HTTPS) : [];
      for (const ref of settingsReference().filter((r) => !given.includes(r.key.slice(5)))) {
        expect(ref.defaults[environment], `${ref.key} on ${environment}`).to.deep.equal(
          ref.required ? undefined : settings[ref.key.slice("edms:".length)],
        );
      }
    }
  });

  it("every production rule the reference states is one validation enforces", function () {
    const refusals: Record<string, unknown>[] = [];
    for (const ref of settingsReference()) {
      for (const f of ref.fields.filter((f) => f.production)) {
        const value = /cannot be `([^`]+)`/.exec(f.production!)?.[1];
        expect(value, `${ref.key}.${f.name}`).to.be.a("string");
        refusals.push({ [ref.key.slice(5)]: { [f.name]: YAML.parse(value!) } });
      }
    }
    refusals.push({ dataGeneration: 0 });
    expect(refusals).to.have.length(4);
    for (const refusal of refusals) {
      const raw = { environment: "production", version: "1", ...refusal };
      expect(() => validateSettings("p", raw), JSON.stringify(refusal)).to.throw(ConfigError);
      expect(() => validateSettings("s", { ...raw, environment: "staging" })).not.to.throw();
    }
  });
});

describe("settings schema", function () {
  it("validated Settings hold exactly the schema's keys, in its order, plus the derived ones", function () {
    expect(settingsKeysAreTheSchemas).to.equal(true);
    const keys = Object.keys(
      validateSettings("s", { environment: "dev", version: "1" }, "tcp://h"),
    );
    expect(keys).to.deep.equal([
      "stack",
      ...Object.keys(settingsSchema("dev").shape),
      "dockerHost",
      "names",
    ]);
  });

  it("every key and field has a description, and every validated key a fix", function () {
    for (const ref of settingsReference()) {
      expect(ref.description, ref.key).to.match(/\S/);
      for (const f of ref.fields) {
        expect(f.description, `${ref.key}.${f.name}`).to.match(/\S/);
      }
    }
    for (const [key, schema] of Object.entries(settingsSchema("dev").shape)) {
      expect((schema.meta() as { fix?: string }).fix, key).to.match(/\S/);
    }
  });

  it("only edms:backup's defaults differ by environment", function () {
    const varying = settingsReference()
      .filter((r) => !r.required && !r.secret && sharedDefault(r.defaults) === undefined)
      .filter((r) => ENVIRONMENTS.some((e) => r.defaults[e] !== undefined))
      .map((r) => r.key);
    expect(varying).to.deep.equal(["edms:backup"]);
  });
});

describe("docs generator", function () {
  it("writes values in a stack file's flow style, quoting only what needs it", function () {
    expect(flow({ keep: 14, schedule: "0 */6 * * *", fixtures: ["a", "b"], on: true })).to.equal(
      '{keep: 14, schedule: "0 */6 * * *", fixtures: [a, b], on: true}',
    );
    expect(flow("haproxy:2.8")).to.equal("haproxy:2.8");
  });

  it("rewrites only the config block: whatever surrounds it stays byte for byte", function () {
    const before = "name: x\n# a comment: kept\noptions:\n  refresh: always\nconfig:\n  old: 1\n";
    const refs = settingsReference().slice(0, 1);
    const out = withConfigBlock(`${before}after: 2\n`, refs);
    expect(out.startsWith(before.replace("config:\n  old: 1\n", "config:\n"))).to.equal(true);
    expect(out).not.to.contain("old: 1");
    expect(out.endsWith("\nafter: 2\n")).to.equal(true);
    expect(YAML.parse(out).config).to.have.keys("edms:environment");
    expect(() => withConfigBlock("name: x\n", refs)).to.throw(/no top-level `config:`/);
  });
});
