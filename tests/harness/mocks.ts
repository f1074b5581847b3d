/**
 * Runs the real program (index.ts) under `pulumi.runtime.setMocks` for one stack and records, for every
 * resource, both its resolved inputs and the registration request the engine would receive (protect,
 * retainOnDelete, deleteBeforeReplace, dependencies, which inputs are secret). Used by the unit tests and,
 * with a `newResource` that acts on a real Docker engine, by the e2e applier.
 */
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import * as path from "path";
import { listVolumesWith, VolumeLister } from "../../components/hostVolumes";
import { readStackConfig } from "../../model/stackFile";
import { ensureCliBuilt } from "./build";

// Internal but exported: resolves once every outstanding registration has been answered.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const { waitForRPCs } = require("@pulumi/pulumi/runtime/settings") as {
  waitForRPCs: () => Promise<void>;
};

export const REPO_ROOT = path.resolve(__dirname, "../..");
const SECRET_SIG = "4dabf18193072939515e22adb298388d";

export interface RecordedResource {
  readonly type: string;
  readonly name: string;
  readonly urn: string;
  /** Inputs as the provider would get them (secrets unwrapped). */
  readonly inputs: Record<string, any>;
  /** Dotted paths of inputs the engine receives as secrets, e.g. `uploads.0.content`. */
  readonly secretInputs: readonly string[];
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
  readonly deleteBeforeReplace: boolean;
  /** The program set `deleteBeforeReplace` (true or false), which overrides the provider's choice. */
  readonly deleteBeforeReplaceDefined: boolean;
  /** Outputs the engine stores as secrets on top of those computed from secret inputs. */
  readonly additionalSecretOutputs: readonly string[];
  /**
   * Every resource the engine orders this one after (`dependenciesList`): explicit `dependsOn` edges and
   * input-borne ones alike, components expanded to their children.
   */
  readonly dependencies: readonly string[];
  /** Names of the resources whose outputs flow into this one's inputs. */
  readonly inputDependencies: readonly string[];
  /**
   * The edges only `dependsOn` creates: `dependencies` that no input carries. The request does not tell an
   * explicit edge apart from an input one, so an edge that is both shows under `inputDependencies` only.
   */
  readonly dependsOnOnly: readonly string[];
  /** The provider reference the engine receives (`<provider urn>::<provider id>`); "" for the default. */
  readonly provider: string;
  readonly parent: string;
}

export interface ProgramRun {
  readonly resources: RecordedResource[];
  readonly outputs: Record<string, unknown>;
  /** Set when the program threw, or a resource failed to register. */
  readonly error?: Error;
  /** What the program logged with `pulumi.log.warn` (without an engine, the SDK hands it to console.warn). */
  readonly warnings: string[];
  byName(name: string): RecordedResource;
  ofType(type: string): RecordedResource[];
}

export type NewResource = (
  args: pulumi.runtime.MockResourceArgs,
) => Promise<pulumi.runtime.MockResourceResult>;

export interface RunOptions {
  readonly stack: string;
  /** Full config keys (`edms:version`) overriding or adding to the stack file. `null` removes a key. */
  readonly overrides?: Record<string, unknown>;
  /** Read `Pulumi.<stack>.yaml` from here; default the repository root. */
  readonly projectDir?: string;
  /** The "provider": default returns the inputs as state, plus fixed values for random and images. */
  readonly newResource?: NewResource;
  /** Sees each registration (with the options the engine gets) before the provider is asked to create it. */
  readonly onRegister?: (registration: Registration) => void;
  /**
   * The volumes the program finds on the host (`refuseHostVolumeProblems`): default none;
   * `engine` asks the real one (the e2e applier).
   */
  readonly hostVolumes?: ReturnType<VolumeLister> | "engine";
  /** Run as `pulumi preview` does (`pulumi.runtime.isDryRun()`); default as `pulumi up`. */
  readonly preview?: boolean;
}

export interface Registration {
  readonly type: string;
  readonly name: string;
  readonly deleteBeforeReplace: boolean;
  readonly protect: boolean;
  readonly retainOnDelete: boolean;
}

/** Stack config as the Pulumi CLI hands it to a program: one string per key, objects as JSON. */
export function stackConfig(
  projectDir: string,
  stack: string,
  overrides: Record<string, unknown> = {},
) {
  const merged: Record<string, unknown> = {
    ...readStackConfig(projectDir, stack),
    ...overrides,
  };
  const config: Record<string, string> = {};
  const secretKeys: string[] = [];
  for (const [key, value] of Object.entries(merged)) {
    if (value === null || value === undefined) {
      continue;
    }
    // A test may give `{secure: "<plaintext>"}`, at the top or nested (`pulumi config set --secret
    // --path`): as the CLI does, the program gets the plain value and the whole key is secret.
    const { plain, secret } = unwrapSecure(value);
    config[key] = typeof plain === "string" ? plain : JSON.stringify(plain);
    if (secret) {
      secretKeys.push(key);
    }
  }
  return { config, secretKeys };
}

function unwrapSecure(value: unknown): { plain: unknown; secret: boolean } {
  if (typeof value !== "object" || value === null) {
    return { plain: value, secret: false };
  }
  if ("secure" in value && Object.keys(value).length === 1) {
    return { plain: String((value as { secure: unknown }).secure), secret: true };
  }
  let secret = false;
  const plain: Record<string, unknown> | unknown[] = Array.isArray(value) ? [] : {};
  for (const [k, v] of Object.entries(value)) {
    const inner = unwrapSecure(v);
    secret ||= inner.secret;
    (plain as Record<string, unknown>)[k] = inner.plain;
  }
  return { plain, secret };
}

/** The image id the mocks give a RemoteImage of `name`: a content id, as Docker's (`sha256:<64 hex>`). */
export function mockImageId(name: string): string {
  return `sha256:${createHash("sha256").update(name).digest("hex")}`;
}

export const defaultNewResource: NewResource = async (args) => {
  const state: Record<string, unknown> = { ...args.inputs };
  if (args.type === "random:index/randomPassword:RandomPassword") {
    state.result = `mock-secret-${args.name}-Zq7`;
  }
  if (args.type === "docker:index/remoteImage:RemoteImage") {
    state.imageId = mockImageId(args.inputs.name);
    state.repoDigest = args.inputs.name;
  }
  // The provider's outputs of a command: what it printed (nothing, here). Hooks read another hook's stdout.
  if (args.type === "command:local:Command") {
    state.stdout = "";
    state.stderr = "";
  }
  return { id: `${args.name}-id`, state };
};

function secretPaths(value: unknown, prefix: string, into: string[]): void {
  if (value && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (record[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270") {
      into.push(prefix);
      return;
    }
    for (const [key, child] of Object.entries(record)) {
      secretPaths(child, prefix ? `${prefix}.${key}` : key, into);
    }
  }
}

/** Inputs with secret wrappers replaced by their values (which inputs were secret is kept apart). */
function revealSecrets(value: any): any {
  if (Array.isArray(value)) {
    return value.map(revealSecrets);
  }
  if (value && typeof value === "object") {
    if (value[SECRET_SIG] === "1b47061264138c4ac30d75fd1eb44270") {
      return revealSecrets(value.value);
    }
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, revealSecrets(v)]));
  }
  return value;
}

const nameOfUrn = (urn: string) => urn.split("::").pop() ?? urn;

export async function runProgram(options: RunOptions): Promise<ProgramRun> {
  const projectDir = options.projectDir ?? REPO_ROOT;
  // The program reads the scheduler bundle (its image's context), as `pulumi up` after `npm run build` does.
  ensureCliBuilt();
  const newResource = options.newResource ?? defaultNewResource;
  const inputsByUrn = new Map<string, Record<string, any>>();
  const requests: any[] = [];
  let failure: Error | undefined;
  let inFlight = 0;
  let signalFailure: (err: Error) => void = () => undefined;
  // A failed resource leaves its dependents' outputs unresolved forever (as in a real `pulumi up`, they are
  // simply not created); the run ends at the first failure once nothing else is in progress.
  const failed = new Promise<never>((_, reject) => (signalFailure = reject));
  failed.catch(() => undefined);

  await pulumi.runtime.setMocks(
    {
      newResource: async (args) => {
        inFlight += 1;
        try {
          // Providers get plain values; which inputs were secret is recorded from the request.
          return await newResource({ ...args, inputs: revealSecrets(args.inputs) });
        } catch (err) {
          failure ??= err as Error;
          signalFailure(err as Error);
          throw err;
        } finally {
          inFlight -= 1;
        }
      },
      call: (args) => {
        throw new Error(`Mock call not implemented: ${args.token}`);
      },
    },
    "edms",
    options.stack,
    options.preview === true,
  );
  const monitor = pulumi.runtime.getMonitor() as any;
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: (err: any, resp: any) => void) => {
    const wrapped = (err: any, resp: any) => {
      if (!err && resp) {
        inputsByUrn.set(
          resp.getUrn(),
          revealSecrets(pulumi.runtime.deserializeProperties(req.getObject())),
        );
      }
      callback(err, resp);
    };
    options.onRegister?.({
      type: req.getType(),
      name: req.getName(),
      deleteBeforeReplace: req.getDeletebeforereplace() === true,
      protect: req.getProtect() === true,
      retainOnDelete: req.getRetainondelete() === true,
    });
    requests.push({
      req: req.toObject(),
      object: req.getObject()?.toJavaScript() ?? {},
      urn: () => urnOf(req),
    });
    return register(req, wrapped);
  };
  const urnOf = (req: any) => monitor.newUrn(req.getParent(), req.getType(), req.getName());

  const { config, secretKeys } = stackConfig(projectDir, options.stack, options.overrides);
  pulumi.runtime.setAllConfig(config, secretKeys);

  const hostVolumes = options.hostVolumes ?? [];
  listVolumesWith(hostVolumes === "engine" ? undefined : () => hostVolumes);
  const programPath = path.join(REPO_ROOT, "index.ts");
  delete require.cache[require.resolve(programPath)];
  let outputs: Record<string, unknown> = {};
  const rejections: Error[] = [];
  const onRejection = (reason: unknown) => rejections.push(reason as Error);
  process.on("unhandledRejection", onRejection);
  const warnings: string[] = [];
  const warn = console.warn;
  console.warn = (...args: unknown[]) => {
    const text = args.map(String).join(" ");
    const logged = /^warning: \[runtime\] ([^]*)$/.exec(text);
    return logged ? void warnings.push(logged[1]) : warn(...args);
  };
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- re-evaluates the program for each stack
    const exported = require(programPath) as Record<string, unknown>;
    outputs = await Promise.race([unwrapAll(exported), failed]);
    await Promise.race([waitForRPCs(), failed]);
  } catch (err) {
    failure ??= err as Error;
    while (inFlight > 0) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    process.off("unhandledRejection", onRejection);
    console.warn = warn;
  }
  failure ??= rejections[0];

  const resources: RecordedResource[] = requests
    .filter((r) => r.req.type !== "pulumi:pulumi:Stack")
    .map((r) => {
      const req = r.req;
      const urn = r.urn();
      const secretInputs: string[] = [];
      secretPaths(r.object, "", secretInputs);
      const inputDeps = new Set<string>();
      for (const [, deps] of req.propertydependenciesMap as [string, { urnsList: string[] }][]) {
        deps.urnsList.forEach((u) => inputDeps.add(nameOfUrn(u)));
      }
      return {
        type: req.type,
        name: req.name,
        urn,
        inputs: inputsByUrn.get(urn) ?? {},
        secretInputs,
        protect: req.protect === true,
        retainOnDelete: req.retainondelete === true,
        deleteBeforeReplace: req.deletebeforereplace === true,
        deleteBeforeReplaceDefined: req.deletebeforereplacedefined === true,
        additionalSecretOutputs: (req.additionalsecretoutputsList as string[] | undefined) ?? [],
        dependencies: (req.dependenciesList as string[]).map(nameOfUrn),
        inputDependencies: [...inputDeps],
        dependsOnOnly: (req.dependenciesList as string[])
          .map(nameOfUrn)
          .filter((name) => !inputDeps.has(name)),
        provider: req.provider ?? "",
        parent: nameOfUrn(req.parent),
      };
    });
  return {
    resources,
    outputs,
    error: failure,
    warnings,
    byName(name: string) {
      const found = resources.find((r) => r.name === name);
      if (!found) {
        throw new Error(
          `no resource named ${name}; have: ${resources.map((r) => r.name).join(", ")}`,
        );
      }
      return found;
    },
    ofType(type: string) {
      return resources.filter((r) => r.type === type);
    },
  };
}

/** Resolves every exported Output; secrets come back as `{ secret: value }` so tests can tell. */
async function unwrapAll(exported: Record<string, unknown>): Promise<Record<string, unknown>> {
  const result: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(exported)) {
    result[key] = await unwrap(value);
  }
  return result;
}

export async function unwrap(value: unknown): Promise<unknown> {
  if (pulumi.Output.isInstance(value)) {
    const output = value as pulumi.Output<unknown>;
    const [resolved, secret] = await Promise.all([
      new Promise((resolve) => output.apply(resolve)),
      pulumi.isSecret(output),
    ]);
    return secret ? { secret: resolved } : resolved;
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return unwrapAll(value as Record<string, unknown>);
  }
  return value;
}

let defaultRuns: Promise<Record<string, ProgramRun>> | undefined;
const defaultTimings: Record<string, number> = {};

/**
 * The program on the three stack files as they are, evaluated once per test process: several test files
 * read the same runs, and each evaluation costs about half a second.
 */
export function stackRuns(): Promise<Record<string, ProgramRun>> {
  defaultRuns ??= (async () => {
    const runs: Record<string, ProgramRun> = {};
    for (const stack of ["dev", "staging", "production"]) {
      const started = Date.now();
      runs[stack] = await runProgram({ stack });
      defaultTimings[stack] = Date.now() - started;
    }
    return runs;
  })();
  return defaultRuns;
}

/**
 * How long each of `stackRuns()`'s evaluations took, in ms (reported, never asserted). The object fills in
 * when the runs are done, so a test file can hold it from the start.
 */
export function stackRunTimings(): Readonly<Record<string, number>> {
  return defaultTimings;
}

/** `stackRuns()` for a test file: the object fills in before its first test runs. */
export function useStackRuns(): Record<string, ProgramRun> {
  const runs: Record<string, ProgramRun> = {};
  before(async function () {
    Object.assign(runs, await stackRuns());
  });
  return runs;
}
