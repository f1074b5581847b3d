/**
 * Test-only scaffolding, not an engine: runs the real program (index.ts) under setMocks and applies each
 * resource's own inputs to a real Docker engine from inside the mock's newResource, so the SDK's own
 * dependency handling decides the order and stops dependents of a failed resource.
 *
 * What it models: networks and volumes created if absent; containers created, and replaced when their inputs
 * change, honouring the `deleteBeforeReplace` the engine receives (delete first, stopping with
 * `destroyGraceSeconds`; without it a second container of the same name is refused, as Docker refuses the
 * engine's create-before-delete); a container whose *name* changes (web per release) is a new resource, so the
 * old one keeps running; after a *successful* run, containers it made for the stack that the program no
 * longer declares are deleted (gracefully), the way the engine deletes dropped resources last and only when
 * the update succeeded; local.Commands run when their triggers change; random values kept per stack.
 * What it does not: diffs of other resources, `protect`, `retainOnDelete`, previews, refresh, pending
 * deletes of failed replacements, state outside this folder and the Docker labels it sets. Those are the
 * engine's and are unit-tested as the options it receives.
 */
import { spawn } from "child_process";
import { createHash, randomBytes } from "crypto";
import * as fs from "fs";
import * as path from "path";
import { docker } from "../../ops/lib/docker";
import { tarball } from "../../ops/lib/tarball";
import { NewResource, ProgramRun, Registration, runProgram } from "../support/program";

export interface HookRun {
  readonly name: string;
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

interface AppliedState {
  random: Record<string, string>;
  hooks: Record<string, string>;
}

export interface ApplyResult {
  readonly run: ProgramRun;
  readonly hooks: HookRun[];
  readonly error?: Error;
}

const hash = (value: unknown) => createHash("sha256").update(JSON.stringify(value)).digest("hex");
const INPUTS_LABEL = "edms.applier.inputs";
const GRACE_LABEL = "edms.applier.grace";

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
      : { random: {}, hooks: {} };
  }

  /** Secret values generated for a stack (to prove they never leak). */
  secrets(stack: string): string[] {
    return Object.values(this.state(stack).random);
  }

  forget(stack: string): void {
    fs.rmSync(this.stateFile(stack), { force: true });
  }

  async apply(stack: string, overrides: Record<string, unknown> = {}): Promise<ApplyResult> {
    const state = this.state(stack);
    const hooks: HookRun[] = [];
    const save = () => fs.writeFileSync(this.stateFile(stack), JSON.stringify(state, null, 2));
    const options = new Map<string, Registration>();
    const declared = new Set<string>();
    const newResource: NewResource = async ({ type, name, inputs }) => {
      if (process.env.EDMS_E2E_VERBOSE) {
        process.stderr.write(`    apply ${type} ${name}\n`);
      }
      const result = (extra: Record<string, unknown> = {}) => ({
        id: `${name}-id`,
        state: { ...inputs, ...extra },
      });
      switch (type) {
        case "random:index/randomPassword:RandomPassword":
          state.random[name] ??= randomBytes(48)
            .toString("base64")
            .replace(/[^A-Za-z0-9]/g, "")
            .slice(0, inputs.length);
          save();
          return result({ result: state.random[name] });
        case "docker:index/network:Network":
          if (
            (await docker(["network", "inspect", inputs.name], { allowFailure: true })).code !== 0
          ) {
            await docker([
              "network",
              "create",
              "--driver",
              inputs.driver ?? "bridge",
              ...labelArgs(inputs.labels),
              inputs.name,
            ]);
          }
          return result();
        case "docker:index/volume:Volume":
          if (
            (await docker(["volume", "inspect", inputs.name], { allowFailure: true })).code !== 0
          ) {
            await docker(["volume", "create", ...labelArgs(inputs.labels), inputs.name]);
          }
          return result();
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
        case "docker:index/container:Container": {
          // The engine's id, as the provider reports it: a replaced container gets a new one.
          declared.add(inputs.name);
          const id = await applyContainer(inputs, options.get(name)?.deleteBeforeReplace === true);
          return { id, state: { ...inputs, id } };
        }
        case "command:local:Command": {
          const triggers = hash(inputs.triggers ?? []);
          if (state.hooks[name] !== triggers) {
            const hook = await runHook(name, inputs);
            hooks.push(hook);
            if (hook.code !== 0) {
              throw new Error(
                `hook ${name} failed (exit ${hook.code}): ${hook.stderr.trim().split("\n").slice(-3).join(" | ")}`,
              );
            }
            state.hooks[name] = triggers;
            save();
          }
          return result();
        }
        default:
          return result();
      }
    };
    const run = await runProgram({
      stack,
      overrides,
      projectDir: this.projectDir,
      newResource,
      onRegister: (r) => options.set(r.name, r),
    });
    if (!run.error) {
      await deleteUndeclared(stack, declared);
    }
    return { run, hooks, error: run.error };
  }
}

const trace = (m: string) => process.env.EDMS_E2E_VERBOSE && process.stderr.write(`    ${m}\n`);

function labelArgs(labels: { label: string; value: string }[] = []): string[] {
  return labels.flatMap((l) => ["--label", `${l.label}=${l.value}`]);
}

/** The engine's delete of a container: stop with the grace period the program gave, then remove. */
async function deleteContainer(name: string, grace: number): Promise<void> {
  await docker(["stop", "-t", String(grace), name], { allowFailure: true });
  await docker(["rm", "-f", name]);
  trace(`deleted ${name}`);
}

/** Deletes of resources dropped from the program: only after a successful update, as the engine does. */
async function deleteUndeclared(stack: string, declared: Set<string>): Promise<void> {
  const listed = await docker([
    "ps",
    "-a",
    "--filter",
    `label=edms.stack=${stack}`,
    "--filter",
    `label=${INPUTS_LABEL}`,
    "--format",
    `{{.Names}} {{.Label "${GRACE_LABEL}"}}`,
  ]);
  for (const line of listed.stdout.split("\n").filter(Boolean)) {
    const [name, grace] = line.split(" ");
    if (!declared.has(name)) {
      await deleteContainer(name, Number(grace) || 0);
    }
  }
}

async function applyContainer(inputs: any, deleteBeforeReplace: boolean): Promise<string> {
  const digest = hash(inputs);
  const existing = await docker(["container", "inspect", inputs.name], { allowFailure: true });
  if (existing.code === 0) {
    const [info] = JSON.parse(existing.stdout);
    if (info.Config.Labels?.[INPUTS_LABEL] === digest && info.State.Running) {
      return info.Id;
    }
    if (!deleteBeforeReplace) {
      // Create-before-delete of a fixed name: Docker answers the engine's create with this conflict.
      throw new Error(
        `Conflict: the container name "${inputs.name}" is already in use (replacement without deleteBeforeReplace)`,
      );
    }
    await deleteContainer(inputs.name, Number(info.Config.Labels?.[GRACE_LABEL]) || 0);
  }
  const args = [
    "create",
    "--name",
    inputs.name,
    ...labelArgs(inputs.labels),
    "--label",
    `${INPUTS_LABEL}=${digest}`,
    "--label",
    `${GRACE_LABEL}=${inputs.destroyGraceSeconds ?? 0}`,
  ];
  if (inputs.restart) {
    args.push("--restart", inputs.restart);
  }
  for (const env of inputs.envs ?? []) {
    args.push("-e", env);
  }
  for (const v of inputs.volumes ?? []) {
    args.push("-v", `${v.volumeName}:${v.containerPath}${v.readOnly ? ":ro" : ""}`);
  }
  const [network, ...more] = inputs.networksAdvanced ?? [];
  if (network) {
    args.push("--network", network.name);
    for (const alias of network.aliases ?? []) {
      args.push("--network-alias", alias);
    }
  }
  if (more.length) {
    throw new Error("applier: one network per container is modelled");
  }
  for (const p of inputs.ports ?? []) {
    args.push("-p", `${p.ip ?? "0.0.0.0"}:${p.external}:${p.internal}`);
  }
  const hc = inputs.healthcheck;
  if (hc) {
    const [kind, ...test] = hc.tests;
    args.push("--health-cmd", kind === "CMD-SHELL" ? test.join(" ") : test.join(" "));
    if (hc.interval) {
      args.push("--health-interval", hc.interval);
    }
    if (hc.timeout) {
      args.push("--health-timeout", hc.timeout);
    }
    if (hc.retries) {
      args.push("--health-retries", String(hc.retries));
    }
  }
  if (inputs.stopTimeout) {
    args.push("--stop-timeout", String(inputs.stopTimeout));
  }
  args.push(inputs.image, ...(inputs.command ?? []));
  const created = (await docker(args)).stdout.trim();
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
    const deadline = Date.now() + (inputs.waitTimeout ?? 60) * 1000;
    for (;;) {
      const status = (
        await docker(["inspect", "-f", "{{.State.Status}} {{.State.Health.Status}}", inputs.name])
      ).stdout.trim();
      if (status === "running healthy") {
        break;
      }
      if (!status.startsWith("running") || Date.now() > deadline) {
        const logs = await docker(["logs", "--tail", "20", inputs.name], { allowFailure: true });
        throw new Error(
          `container ${inputs.name} did not become healthy (${status}): ${logs.stderr}${logs.stdout}`,
        );
      }
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return created;
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
