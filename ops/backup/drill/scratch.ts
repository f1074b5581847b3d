/**
 * The drill's scratch space: a network of its own (`--internal`), a media volume and the release container,
 * all labelled `edms.role=drill-scratch`, removed on every exit path the process sees; what a SIGKILL
 * leaves is removed by the next drill before it starts. With `edms:backup.drillScratch` the media and the
 * scratch database's files go to a folder of that directory on the Docker host instead of Docker's data root.
 * Before anything is copied, the drill is refused when the filesystem there cannot hold the database and the
 * media (ops/backup/space.ts): a full data root would stop the live PostgreSQL too.
 */
import { randomBytes } from "crypto";
import { Settings } from "../../../model/settings";
import { OpsError } from "../../core/errors";
import { progress } from "../../core/log";
import { docker, removeByRole } from "../../engine/docker";
import { opsLabels } from "../../engine/dockerRun";
import { toolbox } from "../../engine/toolbox";
import { Checks } from "./checks";
import { cleanupOnSignal } from "../../core/signals";

const SCRATCH_ROLE = "drill-scratch";

/** A drill's tag: six hex digits, and the shell glob matching one and nothing longer. */
const TAG_BYTES = 3;
const TAG_GLOB = "[0-9a-f]".repeat(TAG_BYTES * 2);

/**
 * Removes the drill folders of the stack whose prefix is $1 in the shared drill scratch folder (/scratch):
 * exactly a tag after the prefix, since stacks may share the folder and another's prefix may begin with
 * this one's followed by `-drill-` (prefixes `a` and `a-drill-x`).
 */
export const LEFTOVER_FOLDERS_SCRIPT = `rm -rf "/scratch/$1"-drill-${TAG_GLOB}`;

/** Names of what one drill creates, so every exit path removes exactly them. */
export class Scratch {
  readonly tag = randomBytes(TAG_BYTES).toString("hex");
  readonly network: string;
  /** The media's scratch: a volume, or a folder of `edms:backup.drillScratch` on the Docker host. */
  readonly volume: string;
  /** The scratch database's files: a folder of `drillScratch`; undefined: the server's own volume. */
  readonly database?: string;
  readonly app: string;
  private readonly base: string;
  private cleaned = false;

  constructor(readonly settings: Settings) {
    this.base = `${settings.namePrefix}-drill-${this.tag}`;
    this.network = this.base;
    this.app = `${this.base}-app`;
    const dir = settings.backup.drillScratch;
    this.volume = dir ? `${dir}/${this.base}/media` : `${this.base}-media`;
    this.database = dir ? `${dir}/${this.base}/database` : undefined;
  }

  labels(): string[] {
    return Object.entries(this.labelMap()).flatMap(([k, v]) => ["--label", `${k}=${v}`]);
  }

  /** What `labels()` gives, as `dockerRunArgs` takes it. */
  labelMap(): Record<string, string> {
    return opsLabels(this.settings, SCRATCH_ROLE);
  }

  async create(): Promise<void> {
    await docker(["network", "create", "--internal", ...this.labels(), this.network]);
    if (this.settings.backup.drillScratch) {
      // Production's media and database land here: the drill's folder is root's alone (the containers
      // get its subfolders as bind mounts, which the parent's mode does not hold back).
      await inScratchDir(
        this.settings,
        'mkdir -p "/scratch/$1/media" "/scratch/$1/database" && chmod 700 "/scratch/$1"',
        [this.base],
      );
    } else {
      await docker(["volume", "create", ...this.labels(), this.volume]);
    }
  }

  async cleanup(): Promise<void> {
    if (this.cleaned) {
      return;
    }
    this.cleaned = true;
    // The containers first, at once (they hold the network, the volume and the folders); then the network
    // beside the media (a second for a GiB of files).
    await Promise.all([
      docker(["rm", "-f", "-v", this.app], { allowFailure: true }),
      removeByRole(this.settings.stack, "scratch-db"),
    ]);
    await Promise.all([
      docker(["network", "rm", this.network], { allowFailure: true }),
      this.settings.backup.drillScratch
        ? inScratchDir(this.settings, 'rm -rf "/scratch/$1"', [this.base]).catch(() => undefined)
        : docker(["volume", "rm", "-f", this.volume], { allowFailure: true }),
    ]);
  }
}

/** A script over `edms:backup.drillScratch` (at /scratch), as root: makes and removes a drill's folders. */
function inScratchDir(settings: Settings, script: string, args: readonly string[]) {
  return toolbox(
    settings,
    [{ volume: settings.backup.drillScratch as string, path: "/scratch" }],
    script,
    { args },
  );
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
  if (settings.backup.drillScratch) {
    await inScratchDir(settings, LEFTOVER_FOLDERS_SCRIPT, [settings.namePrefix]);
  }
}

/**
 * Runs `drill` with fresh scratch space, removed on every exit path, a signal too. Scratch space that cannot
 * be set up (the scratch server never starts, no network) fails the drill like a check, and the record
 * says so. `room` may refuse the drill before anything is copied: that refusal is thrown, as the backup is
 * not at fault.
 */
export async function inScratch(
  settings: Settings,
  checks: Checks,
  room: (scratch: Scratch) => Promise<void>,
  drill: (scratch: Scratch) => Promise<void>,
): Promise<void> {
  await removeDrillLeftovers(settings);
  const scratch = new Scratch(settings);
  const stopWatching = cleanupOnSignal(async (signal) => {
    progress(`drill: ${signal}: removing the scratch containers, network and volume`);
    await scratch.cleanup();
  });
  let refused: OpsError | undefined;
  try {
    await scratch.create();
    refused = await room(scratch).then(
      () => undefined,
      (err: OpsError) => err,
    );
    if (!refused) {
      await drill(scratch);
    }
  } catch (err) {
    // The scratch server stopped by a full disk, say, is recorded as the host's fault, as in a check.
    checks.failed("scratch space", err as Error, 0);
  } finally {
    await scratch.cleanup();
    stopWatching();
  }
  if (refused) {
    throw refused;
  }
}
