/**
 * Test-only scaffolding, not an engine: runs the real program (index.ts) under setMocks and applies each
 * resource's own inputs to a real Docker engine from inside the mock's newResource, so the SDK's own
 * dependency handling decides the order and stops dependents of a failed resource.
 *
 * It keeps a state per stack, as Pulumi does, and like `pulumi up` it compares the program's inputs with that
 * state, not with Docker: a container whose inputs did not change is left alone even when it is stopped or
 * gone. Only a refresh looks at the engine (`apply(stack, {refresh: true})`, or `options: refresh: always` in
 * Pulumi.yaml, which this project sets), the way the read of @pulumi/docker 5.x (terraform-provider-docker
 * 4.x, `resourceDockerContainerRead`) does: a missing container, volume or network drops out of the state, so
 * the update creates it again; a stopped container stays in the state with `must_run` false, so the update
 * starts that same container (no new id, no uploads, no health wait); one that publishes ports also reads
 * back no ports (Docker reports none for a stopped container), a ForceNew difference, so it is replaced.
 *
 * Modelled: containers created, and replaced when their inputs change, honouring the `deleteBeforeReplace` the
 * engine receives (delete first, stopping with `destroyGraceSeconds`; without it a second container of the same
 * name is refused, as Docker refuses the engine's create-before-delete); deleting a container that is gone
 * succeeds, as the provider's delete ignores "No such container"; a container whose *name* changes (web per
 * release) is a new resource, so the old one keeps running; after a *successful* run, resources the program no
 * longer declares and the old halves of replacements are deleted, the way the engine deletes them last
 * (volumes only without `retainOnDelete`); a new volume name is a replacement (refused for a `protect`ed
 * volume); local.Commands run when their triggers change; random values kept per stack, drawn from the
 * characters `special`/`overrideSpecial` allow.
 * Images (docker.Image) are built with `docker build` when their inputs change.
 * Refused loudly, because the engine would do something this does not model: any other change of a volume's
 * or network's inputs, and container, image or random inputs it does not know.
 * Not modelled: previews, pending deletes of failed replacements, `pulumi destroy`, secrets encryption.
 */
import { spawn } from "child_process";
import { createHash, randomInt } from "crypto";
import * as fs from "fs";
import * as path from "path";
import * as YAML from "yaml";
import { ContainerInspectSchema, docker } from "../../ops/engine/docker";
import { tarball } from "../../ops/engine/tarball";
import { NewResource, ProgramRun, Registration, REPO_ROOT, runProgram } from "./mocks";

export interface HookRun {
  readonly name: string;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** What the state holds of a Docker resource: enough to compare inputs and to delete it. */
export interface StateResource {
  readonly type: string;
  /** Docker's name (containers, volumes, networks). */
  readonly dockerName: string;
  readonly inputsHash: string;
  /** Docker's id of a container. */
  readonly id: string;
  readonly grace: number;
  readonly retainOnDelete: boolean;
  /**
   * A container's `must_run` in the state: false once a refresh found it stopped (the provider's read sets it
   * so), which the next update turns back to true by starting the container. Absent: true.
   */
  readonly mustRun?: boolean;
  /** How many ports a container's state publishes; a refresh of a stopped container reads none back. */
  readonly ports?: number;
}

interface AppliedState {
  random: Record<string, string>;
  hooks: Record<string, string>;
  /**
   * Each hook's `stdout` output as the command provider keeps it (trailing newline trimmed): a hook that
   * does not run again still hands its last stdout to dependents (the pre-deploy backup id). Absent in
   * states written before hooks had outputs.
   */
  hookStdout?: Record<string, string>;
  /** Hash of each hook's inputs other than its triggers: a change runs its `update` command. */
  hookInputs?: Record<string, string>;
  resources: Record<string, StateResource>;
}

export interface ApplyOptions {
  /** Config keys overriding the stack file. */
  readonly overrides?: Record<string, unknown>;
  /** `pulumi up --refresh`; default: what Pulumi.yaml's `options.refresh` says. */
  readonly refresh?: boolean;
}

export interface ApplyResult {
  readonly run: ProgramRun;
  readonly hooks: HookRun[];
  readonly error?: Error;
}

/** How the state remembers inputs (and hook triggers): equal inputs, equal hash. */
export const hash = (value: unknown) =>
  createHash("sha256").update(JSON.stringify(value)).digest("hex");
const CONTAINER = "docker:index/container:Container";
const VOLUME = "docker:index/volume:Volume";
const NETWORK = "docker:index/network:Network";
const IMAGE = "docker:index/image:Image";

/** `options: refresh: always` in the project file: every `pulumi up` refreshes first. */
export function projectRefreshesAlways(projectFile = path.join(REPO_ROOT, "Pulumi.yaml")): boolean {
  const project = YAML.parse(fs.readFileSync(projectFile, "utf8")) as {
    options?: { refresh?: string };
  };
  return project.options?.refresh === "always";
}

export class Applier {
  constructor(
    readonly projectDir: string,
    readonly stateDir: string,
  ) {
    fs.mkdirSync(stateDir, { recursive: true });
  }

  private stateFile(stack: string) {
    return path.join(this.stateDir, `${stack}.json`);
  }

  state(stack: string): AppliedState {
    const file = this.stateFile(stack);
    return fs.existsSync(file)
      ? (JSON.parse(fs.readFileSync(file, "utf8")) as AppliedState)
      : { random: {}, hooks: {}, resources: {} };
  }

  /** Secret values generated for a stack (to prove they never leak). */
  secrets(stack: string): string[] {
    return Object.values(this.state(stack).random);
  }

  forget(stack: string): void {
    fs.rmSync(this.stateFile(stack), { force: true });
  }

  async apply(stack: string, options: ApplyOptions = {}): Promise<ApplyResult> {
    const state = this.state(stack);
    const hooks: HookRun[] = [];
    const save = () => fs.writeFileSync(this.stateFile(stack), JSON.stringify(state, null, 2));
    if (options.refresh ?? projectRefreshesAlways()) {
      await refresh(state);
      save();
    }
    const registrations = new Map<string, Registration>();
    const declared = new Set<string>();
    // Old halves of replacements: deleted once the whole update has succeeded.
    const replaced: StateResource[] = [];
    const newResource: NewResource = async ({ type, name, inputs }) => {
      if (process.env.EDMS_E2E_VERBOSE) {
        process.stderr.write(`    apply ${type} ${name}\n`);
      }
      declared.add(name);
      const result = (extra: Record<string, unknown> = {}) => ({
        id: `${name}-id`,
        state: { ...inputs, ...extra },
      });
      const registration = registrations.get(name);
      const previous = state.resources[name];
      const remember = (resource: Omit<StateResource, "type" | "inputsHash">) => {
        state.resources[name] = { type, inputsHash: hash(inputs), ...resource };
        save();
      };
      switch (type) {
        case "random:index/randomPassword:RandomPassword":
          state.random[name] ??= randomPassword(name, inputs);
          save();
          return result({ result: state.random[name] });
        case NETWORK:
        case VOLUME: {
          if (previous?.inputsHash === hash(inputs)) {
            return result();
          }
          if (previous) {
            refuseReplacement(type, name, previous, inputs, registration);
            replaced.push(previous);
          }
          if (type === NETWORK) {
            await createNetwork(inputs);
          } else if (
            // Docker's create of an existing name returns that volume, as the provider's create gets it.
            (await docker(["volume", "inspect", inputs.name], { allowFailure: true })).code !== 0
          ) {
            await docker(["volume", "create", ...labelArgs(inputs.labels), inputs.name]);
          }
          remember({
            dockerName: inputs.name,
            id: inputs.name,
            grace: 0,
            retainOnDelete: registration?.retainOnDelete === true,
          });
          return result();
        }
        case "docker:index/remoteImage:RemoteImage": {
          const image = await docker(["image", "inspect", inputs.name, "--format", "{{.Id}}"], {
            allowFailure: true,
          });
          if (image.code !== 0) {
            throw new Error(
              `image ${inputs.name} is not on this engine; build it with \`npm run images\``,
            );
          }
          return result({ imageId: image.stdout.trim(), repoDigest: inputs.name });
        }
        case IMAGE: {
          // Built on the engine, never pushed; rebuilt when its inputs change (the provider also hashes the
          // context: the program's tag is a hash of it). Tags are not deleted, as the provider leaves them.
          const id = await docker(["image", "inspect", "-f", "{{.Id}}", inputs.imageName], {
            allowFailure: true,
          });
          if (previous?.inputsHash === hash(inputs) && id.code === 0) {
            return result({ repoDigest: id.stdout.trim() });
          }
          const built = await buildImage(name, inputs);
          remember({ dockerName: inputs.imageName, id: built, grace: 0, retainOnDelete: true });
          return result({ repoDigest: built });
        }
        case CONTAINER: {
          checkContainerInputs(name, inputs);
          const step = containerStep(previous, inputs);
          if (previous && (step === "same" || step === "start")) {
            if (step === "start") {
              // The provider's update for `must_run` false → true: ContainerStart, nothing else.
              await docker(["start", previous.id]);
              trace(`started ${previous.dockerName}`);
              const { dockerName, id, grace, retainOnDelete, ports } = previous;
              remember({ dockerName, id, grace, retainOnDelete, ports });
            }
            return { id: previous.id, state: { ...inputs, id: previous.id } };
          }
          if (previous && registration?.deleteBeforeReplace) {
            await deleteResource(previous);
          } else if (previous) {
            replaced.push(previous);
          }
          const id = await createContainer(inputs);
          remember({
            dockerName: inputs.name,
            id,
            grace: inputs.destroyGraceSeconds ?? 0,
            retainOnDelete: false,
            ports: publishedPorts(inputs),
          });
          return { id, state: { ...inputs, id } };
        }
        case "command:local:Command": {
          const stdout = await applyHook(state, name, inputs, hooks);
          save();
          // The SDK resolves a dependent's inputs from these outputs, as from the provider's.
          return result({ stdout });
        }
        default:
          return result();
      }
    };
    const run = await runProgram({
      stack,
      overrides: options.overrides,
      projectDir: this.projectDir,
      newResource,
      hostVolumes: "engine",
      onRegister: (r) => registrations.set(r.name, r),
    });
    if (!run.error) {
      // The engine's last step: delete what the program dropped, then the old halves of replacements.
      for (const [name, resource] of Object.entries(state.resources)) {
        if (!declared.has(name)) {
          await deleteResource(resource);
          delete state.resources[name];
        }
      }
      for (const resource of replaced) {
        await deleteResource(resource);
      }
      save();
    }
    return { run, hooks, error: run.error };
  }
}

const trace = (m: string) => process.env.EDMS_E2E_VERBOSE && process.stderr.write(`    ${m}\n`);

function labelArgs(labels: { label: string; value: string }[] = []): string[] {
  return labels.flatMap((l) => ["--label", `${l.label}=${l.value}`]);
}

/** The engine's refresh: the docker provider's read of each resource in the state, applied to it. */
async function refresh(state: AppliedState): Promise<void> {
  for (const [name, resource] of Object.entries(state.resources)) {
    if (resource.type === CONTAINER) {
      const found = await docker(
        ["container", "inspect", "-f", "{{.State.Running}}", resource.id],
        {
          allowFailure: true,
        },
      );
      const read = readContainer(
        resource,
        found.code === 0 ? { running: found.stdout.trim() === "true" } : null,
      );
      if (read) {
        state.resources[name] = read;
      } else {
        delete state.resources[name];
      }
      continue;
    }
    const kind =
      resource.type === VOLUME ? "volume" : resource.type === IMAGE ? "image" : "network";
    if ((await docker([kind, "inspect", resource.dockerName], { allowFailure: true })).code !== 0) {
      delete state.resources[name];
    }
  }
}

/**
 * What the provider's `resourceDockerContainerRead` (terraform-provider-docker 4.x) leaves in the state for a
 * container, given what the engine has under its id (null: nothing). Gone: `d.SetId("")`, out of the state.
 * Stopped: kept, with `must_run` set false "to trigger update", and its ports read from the stopped container's
 * network settings, which Docker empties on stop.
 */
export function readContainer(
  resource: StateResource,
  found: { readonly running: boolean } | null,
): StateResource | undefined {
  if (!found) {
    return undefined;
  }
  if (found.running) {
    return resource;
  }
  return { ...resource, mustRun: false, ...(resource.ports ? { ports: 0 } : {}) };
}

/**
 * What `pulumi up` does with a container, from its state and the program's inputs: nothing; start it (only
 * `must_run` differs, which is not ForceNew, so the provider's update starts it); replace it (inputs changed,
 * or a refresh read back fewer ports than the inputs publish: `ports` is ForceNew); or create it.
 */
export function containerStep(
  previous: StateResource | undefined,
  inputs: Record<string, any>,
): "same" | "start" | "replace" | "create" {
  if (!previous) {
    return "create";
  }
  if (previous.inputsHash !== hash(inputs)) {
    return "replace";
  }
  if (previous.ports !== undefined && previous.ports !== publishedPorts(inputs)) {
    return "replace";
  }
  return previous.mustRun === false ? "start" : "same";
}

function publishedPorts(inputs: Record<string, any>): number {
  return ((inputs.ports ?? []) as unknown[]).length;
}

/**
 * A volume or network whose inputs changed: the engine replaces it (every input forces a new one). The one
 * replacement modelled is a new name (a `dataGeneration` bump): created beside the old, which goes at the
 * end. Under the same name the engine's create-before-delete would delete what it had just "created" (Docker's
 * create of an existing volume returns it), so that, and a protected resource, stop the run.
 */
export function refuseReplacement(
  type: string,
  name: string,
  previous: StateResource,
  inputs: Record<string, any>,
  registration: Registration | undefined,
): void {
  if (registration?.protect) {
    throw new Error(
      `${name}: unable to replace resource, as it is currently marked for protection (inputs changed)`,
    );
  }
  if (type === NETWORK || previous.dockerName === inputs.name) {
    throw new Error(
      `applier: the inputs of ${type} ${name} (${inputs.name}) changed; the engine would replace it, which ` +
        `this applier does not model for a network or a volume that keeps its name. Change the test or the program.`,
    );
  }
}

async function createNetwork(inputs: Record<string, any>): Promise<void> {
  await docker(networkCreateArgs(inputs));
}

/** `docker network create` for a docker.Network's inputs; `internal`: no gateway, nothing published. */
export function networkCreateArgs(inputs: Record<string, any>): string[] {
  const unknown = Object.keys(inputs).filter(
    (k) => !["name", "driver", "labels", "internal"].includes(k),
  );
  if (unknown.length) {
    throw new Error(
      `applier: network ${inputs.name} has inputs it does not model: ${unknown.join(", ")}. Teach ` +
        "networkCreateArgs() (tests/harness/applier.ts) to apply them or they would be ignored.",
    );
  }
  return [
    "network",
    "create",
    "--driver",
    inputs.driver ?? "bridge",
    ...(inputs.internal ? ["--internal"] : []),
    ...labelArgs(inputs.labels),
    inputs.name,
  ];
}

/**
 * A container's `networksAdvanced` as the provider applies them: every network joined (with its aliases)
 * before the container starts. The first is given to `docker create`, the others connected after it.
 */
export function containerNetworkArgs(inputs: Record<string, any>): {
  readonly create: string[];
  readonly connect: string[][];
} {
  const [first, ...more] = (inputs.networksAdvanced ?? []) as {
    name: string;
    aliases?: string[];
  }[];
  const aliases = (flag: string, n: { aliases?: string[] }) =>
    (n.aliases ?? []).flatMap((a) => [flag, a]);
  return {
    create: first ? ["--network", first.name, ...aliases("--network-alias", first)] : [],
    connect: more.map((n) => ["network", "connect", ...aliases("--alias", n), n.name, inputs.name]),
  };
}

/**
 * The provider's delete: a container stopped with its grace period and removed. One already gone is no error:
 * `resourceDockerContainerDelete` ignores "No such container" from the stop, the remove and the wait.
 */
async function deleteResource(resource: StateResource): Promise<void> {
  if (resource.type === CONTAINER) {
    const stopped = await docker(["stop", "-t", String(resource.grace), resource.id], {
      allowFailure: true,
    });
    const stopError = containerDeleteError("stopping", resource.dockerName, stopped);
    if (stopError) {
      throw stopError;
    }
    const removed = await docker(["rm", "-f", resource.id], { allowFailure: true });
    const removeError = containerDeleteError("deleting", resource.dockerName, removed);
    if (removeError) {
      throw removeError;
    }
  } else if (resource.type === VOLUME && !resource.retainOnDelete) {
    await docker(["volume", "rm", resource.dockerName]);
  } else if (resource.type === NETWORK) {
    await docker(["network", "rm", resource.dockerName]);
  }
  trace(`deleted ${resource.dockerName}`);
}

/** The error the provider's delete reports for one docker step, or none (done, or nothing left to do). */
export function containerDeleteError(
  step: "stopping" | "deleting",
  name: string,
  result: { readonly code: number; readonly stderr: string },
): Error | undefined {
  const ignorable =
    step === "stopping" ? /No such container/i : /No such container|is already in progress/i;
  if (result.code === 0 || ignorable.test(result.stderr)) {
    return undefined;
  }
  return new Error(`Error ${step} container ${name}: ${result.stderr.trim()}`);
}

/** RandomPassword as the provider draws it: letters and digits, plus `overrideSpecial` (or its default set). */
export function randomPassword(name: string, inputs: Record<string, any>): string {
  const known = ["length", "special", "overrideSpecial", "upper", "lower", "numeric"];
  const unknown = Object.keys(inputs).filter((k) => !known.includes(k));
  if (unknown.length) {
    throw new Error(`applier: RandomPassword ${name} has inputs it does not model: ${unknown}`);
  }
  const alphabet =
    (inputs.upper === false ? "" : "ABCDEFGHIJKLMNOPQRSTUVWXYZ") +
    (inputs.lower === false ? "" : "abcdefghijklmnopqrstuvwxyz") +
    (inputs.numeric === false ? "" : "0123456789") +
    (inputs.special === false ? "" : (inputs.overrideSpecial ?? "!@#$%&*()-_=+[]{}<>:?"));
  return Array.from({ length: inputs.length }, () => alphabet[randomInt(alphabet.length)]).join("");
}

/** Container inputs this applier turns into `docker create` flags; anything else would be silently lost. */
const CONTAINER_INPUTS: Record<string, readonly string[] | null> = {
  name: null,
  image: null,
  command: null,
  labels: ["label", "value"],
  restart: null,
  envs: null,
  volumes: ["volumeName", "hostPath", "containerPath", "readOnly"],
  networksAdvanced: ["name", "aliases"],
  ports: ["internal", "external", "ip", "protocol"],
  healthcheck: ["tests", "interval", "timeout", "retries", "startPeriod"],
  stopTimeout: null,
  destroyGraceSeconds: null,
  uploads: ["file", "content", "permissions"],
  wait: null,
  waitTimeout: null,
  securityOpts: null,
  capabilities: ["adds", "drops"],
  readOnly: null,
  tmpfs: null,
  memory: null,
  memorySwap: null,
  logDriver: null,
  logOpts: null,
};

export function checkContainerInputs(name: string, inputs: Record<string, any>): void {
  const problems: string[] = [];
  for (const [key, value] of Object.entries(inputs)) {
    if (!(key in CONTAINER_INPUTS)) {
      problems.push(key);
      continue;
    }
    const fields = CONTAINER_INPUTS[key];
    const items = Array.isArray(value) ? value : [value];
    for (const item of fields && value !== null && typeof value === "object" ? items : []) {
      problems.push(
        ...Object.keys(item)
          .filter((k) => !fields!.includes(k))
          .map((k) => `${key}.${k}`),
      );
    }
  }
  if (problems.length) {
    throw new Error(
      `applier: container ${name} has inputs it does not model: ${problems.join(", ")}. Teach createContainer() ` +
        `to apply them (tests/harness/applier.ts) or they would be ignored.`,
    );
  }
}

async function createContainer(inputs: any): Promise<string> {
  const args = ["create", "--name", inputs.name, ...labelArgs(inputs.labels)];
  if (inputs.restart) {
    args.push("--restart", inputs.restart);
  }
  for (const env of inputs.envs ?? []) {
    args.push("-e", env);
  }
  for (const v of inputs.volumes ?? []) {
    if ((v.volumeName === undefined) === (v.hostPath === undefined)) {
      throw new Error(
        `applier: a volume of ${inputs.name} needs exactly one of volumeName, hostPath`,
      );
    }
    args.push("-v", `${v.volumeName ?? v.hostPath}:${v.containerPath}${v.readOnly ? ":ro" : ""}`);
  }
  const networks = containerNetworkArgs(inputs);
  args.push(...networks.create);
  for (const p of inputs.ports ?? []) {
    // The provider's default is every IPv4 interface; an IPv6 address is bracketed for `-p`.
    const ip = p.ip === undefined ? "0.0.0.0" : p.ip.includes(":") ? `[${p.ip}]` : p.ip;
    args.push("-p", `${ip}:${p.external}:${p.internal}${p.protocol ? `/${p.protocol}` : ""}`);
  }
  const hc = inputs.healthcheck;
  if (hc) {
    const [, ...test] = hc.tests;
    args.push("--health-cmd", test.join(" "));
    for (const [flag, value] of [
      ["--health-interval", hc.interval],
      ["--health-timeout", hc.timeout],
      ["--health-retries", hc.retries],
      ["--health-start-period", hc.startPeriod],
    ]) {
      if (value) {
        args.push(flag, String(value));
      }
    }
  }
  if (inputs.stopTimeout) {
    args.push("--stop-timeout", String(inputs.stopTimeout));
  }
  args.push(...confinementArgs(inputs));
  args.push(inputs.image, ...(inputs.command ?? []));
  const created = (await docker(args)).stdout.trim();
  for (const connect of networks.connect) {
    await docker(connect);
  }
  trace(`created ${inputs.name}`);
  if ((inputs.uploads ?? []).length) {
    const archive = await tarball(
      inputs.uploads.map((u: any) => ({
        name: u.file.replace(/^\//, ""),
        content: u.content ?? "",
        mode: parseInt(u.permissions ?? "0644", 8),
      })),
    );
    await docker(["cp", "-", `${inputs.name}:/`], { input: archive });
  }
  trace(`uploaded ${inputs.name}`);
  await docker(["start", inputs.name]);
  trace(`started ${inputs.name}`);
  if (inputs.wait && hc) {
    await waitHealthy(inputs.name, inputs.waitTimeout ?? 60);
  }
  return created;
}

/**
 * The confinement inputs as the provider hands them to the engine: memory in MB (memorySwap the same
 * unit), capabilities as given (the engine accepts them with or without `CAP_`). Uploads still go to `/`
 * as the provider's do, so a read-only root with uploads fails here as it would there.
 */
export function confinementArgs(inputs: Record<string, any>): string[] {
  const args: string[] = [];
  for (const option of inputs.securityOpts ?? []) {
    args.push("--security-opt", option);
  }
  for (const cap of inputs.capabilities?.drops ?? []) {
    args.push("--cap-drop", cap);
  }
  for (const cap of inputs.capabilities?.adds ?? []) {
    args.push("--cap-add", cap);
  }
  if (inputs.readOnly) {
    args.push("--read-only");
  }
  for (const [path, options] of Object.entries(inputs.tmpfs ?? {})) {
    args.push("--tmpfs", options ? `${path}:${options}` : path);
  }
  if (inputs.memory) {
    args.push(`--memory=${inputs.memory}m`);
  }
  if (inputs.memorySwap) {
    args.push(`--memory-swap=${inputs.memorySwap}m`);
  }
  if (inputs.logDriver) {
    args.push("--log-driver", inputs.logDriver);
  }
  for (const [option, value] of Object.entries(inputs.logOpts ?? {})) {
    args.push("--log-opt", `${option}=${value}`);
  }
  return args;
}

/** docker.Image as this program uses it: a local build (`skipPush`) of a context with a Dockerfile and args. */
export function checkImageInputs(name: string, inputs: Record<string, any>): void {
  const build = (inputs.build ?? {}) as Record<string, any>;
  const unknown = [
    // buildOnPreview only changes what a preview does; the applier only applies.
    ...Object.keys(inputs).filter(
      (k) => !["imageName", "skipPush", "build", "buildOnPreview"].includes(k),
    ),
    ...Object.keys(build)
      .filter((k) => !["context", "dockerfile", "args"].includes(k))
      .map((k) => `build.${k}`),
  ];
  if (unknown.length || inputs.skipPush !== true || !build.context) {
    throw new Error(
      `applier: image ${name} has inputs it does not model (${unknown.join(", ") || "a push, or no build.context"}). ` +
        "Teach buildImage() (tests/harness/applier.ts) or they would be ignored.",
    );
  }
}

async function buildImage(name: string, inputs: Record<string, any>): Promise<string> {
  checkImageInputs(name, inputs);
  const build = inputs.build as Record<string, any>;
  const args = ["build", "-q", "-t", inputs.imageName];
  if (build.dockerfile) {
    args.push("-f", build.dockerfile);
  }
  for (const [key, value] of Object.entries((build.args ?? {}) as Record<string, string>)) {
    args.push("--build-arg", `${key}=${value}`);
  }
  await docker([...args, build.context]);
  trace(`built ${inputs.imageName}`);
  return (await docker(["image", "inspect", "-f", "{{.Id}}", inputs.imageName])).stdout.trim();
}

async function waitHealthy(name: string, timeoutSeconds: number): Promise<void> {
  const deadline = Date.now() + timeoutSeconds * 1000;
  for (;;) {
    // `container inspect` (not `inspect -f`): the engine's socket answers it, no docker CLI start per poll.
    const [{ State }] = ContainerInspectSchema.parse(
      JSON.parse((await docker(["container", "inspect", name])).stdout),
    );
    const status = `${State.Status} ${State.Health?.Status ?? "<no value>"}`;
    if (status === "running healthy") {
      return;
    }
    if (!status.startsWith("running") || Date.now() > deadline) {
      const logs = await docker(["logs", "--tail", "20", name], { allowFailure: true });
      throw new Error(
        `container ${name} did not become healthy (${status}): ${logs.stderr}${logs.stdout}`,
      );
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * A local.Command as the provider runs it. New triggers replace it: `create` runs (a hook run). Other changed
 * inputs update it: `update` runs (`true` for every hook, so not a hook run) and, as in the provider, its
 * output becomes the resource's `stdout`. Unchanged, it keeps the stored `stdout`, which the engine hands to
 * dependents (the pre-deploy backup id a retried drill reads). A failing command fails the update.
 */
export async function applyHook(
  state: Pick<AppliedState, "hooks" | "hookStdout" | "hookInputs">,
  name: string,
  inputs: Record<string, any>,
  runs: HookRun[],
): Promise<string> {
  const triggers = hash(inputs.triggers ?? []);
  const others = hash({ ...inputs, triggers: null });
  state.hookStdout ??= {};
  state.hookInputs ??= {};
  const replaced = state.hooks[name] !== triggers;
  // A state written before inputs were kept: nothing to compare with, so nothing changed.
  const updated = !replaced && (state.hookInputs[name] ?? others) !== others;
  if (replaced || updated) {
    const create = replaced || inputs.update === undefined;
    const hook = await runHook(name, create ? inputs : { ...inputs, create: inputs.update });
    if (create) {
      runs.push(hook);
    }
    if (hook.code !== 0) {
      throw new Error(
        `hook ${name} failed (exit ${hook.code}): ${hook.stderr.trim().split("\n").slice(-3).join(" | ")}`,
      );
    }
    state.hooks[name] = triggers;
    state.hookStdout[name] = commandOutput(hook.stdout);
  }
  state.hookInputs[name] = others;
  return state.hookStdout[name] ?? "";
}

/** What the command provider keeps of a stream as the resource's output: one trailing newline trimmed. */
export function commandOutput(stream: string): string {
  return stream.replace(/\n$/, "");
}

function runHook(name: string, inputs: any): Promise<HookRun> {
  return new Promise((resolve) => {
    const child = spawn("sh", ["-c", inputs.create], {
      cwd: inputs.dir,
      env: { ...process.env, ...inputs.environment },
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
      if (process.env.EDMS_E2E_VERBOSE) {
        process.stderr.write(`      [${name}] ${d}`);
      }
    });
    child.on("close", (code) => resolve({ name, code: code ?? 1, stdout, stderr }));
  });
}
