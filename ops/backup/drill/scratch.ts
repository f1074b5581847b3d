/**
 * The drill's scratch space: a network of its own (`--internal`), a media volume and the release container,
 * all labelled `edms.role=drill-scratch`, removed on every exit path the process sees; what a SIGKILL
 * leaves is removed by the next drill before it starts.
 */
import { randomBytes } from "crypto";
import * as os from "os";
import { Settings } from "../../../model/settings";
import { progress } from "../../core/log";
import { docker, removeByRole } from "../../engine/docker";
import { Checks } from "./checks";

const SCRATCH_ROLE = "drill-scratch";

/** Names of what one drill creates, so every exit path removes exactly them. */
export class Scratch {
  readonly tag = randomBytes(3).toString("hex");
  readonly network: string;
  readonly volume: string;
  readonly app: string;
  private cleaned = false;

  constructor(readonly settings: Settings) {
    const base = `${settings.namePrefix}-drill-${this.tag}`;
    this.network = base;
    this.volume = `${base}-media`;
    this.app = `${base}-app`;
  }

  labels(): string[] {
    return ["--label", `edms.stack=${this.settings.stack}`, "--label", `edms.role=${SCRATCH_ROLE}`];
  }

  async create(): Promise<void> {
    await docker(["network", "create", "--internal", ...this.labels(), this.network]);
    await docker(["volume", "create", ...this.labels(), this.volume]);
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) {
      return;
    }
    this.cleaned = true;
    await docker(["rm", "-f", "-v", this.app], { allowFailure: true });
    await removeByRole(this.settings.stack, "scratch-db");
    await docker(["network", "rm", this.network], { allowFailure: true });
    await docker(["volume", "rm", "-f", this.volume], { allowFailure: true });
  }
}

/** What killed drills left behind: containers first (they hold the network and the volume). */
export async function removeDrillLeftovers(settings: Settings): Promise<void> {
  const filters = ["--filter", `label=edms.stack=${settings.stack}`];
  filters.push("--filter", `label=edms.role=${SCRATCH_ROLE}`);
  await removeByRole(settings.stack, SCRATCH_ROLE);
  await removeByRole(settings.stack, "scratch-db");
  const networks = (await docker(["network", "ls", "-q", ...filters])).stdout.split("\n");
  for (const id of networks.filter(Boolean)) {
    await docker(["network", "rm", id], { allowFailure: true });
  }
  const volumes = (await docker(["volume", "ls", "-q", ...filters])).stdout.split("\n");
  for (const name of volumes.filter(Boolean)) {
    await docker(["volume", "rm", "-f", name], { allowFailure: true });
  }
}

/**
 * Runs `drill` with fresh scratch space, removed on every exit path, a signal too. Scratch space that cannot
 * be set up (the scratch server never starts, no network) fails the drill like a check, and the record
 * says so.
 */
export async function inScratch(
  settings: Settings,
  checks: Checks,
  drill: (scratch: Scratch) => Promise<void>,
): Promise<void> {
  await removeDrillLeftovers(settings);
  const scratch = new Scratch(settings);
  const onSignal = (signal: NodeJS.Signals) => {
    progress(`drill: ${signal}: removing the scratch containers, network and volume`);
    void scratch.cleanup().finally(() => process.exit(128 + (os.constants.signals[signal] ?? 1)));
  };
  const signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM", "SIGHUP"];
  signals.forEach((s) => process.once(s, onSignal));
  try {
    await scratch.create();
    await drill(scratch);
  } catch (err) {
    checks.list.push({
      name: "scratch space",
      ok: false,
      detail: (err as Error).message,
      seconds: 0,
    });
  } finally {
    await scratch.cleanup();
    signals.forEach((s) => process.removeListener(s, onSignal));
  }
}
