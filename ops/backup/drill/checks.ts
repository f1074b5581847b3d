/** The steps of a drill, each one timed and recorded, the failures as well as the passes. */
import { allSettledOrThrow } from "../../core/errors";
import { HostFault } from "../../core/hostFault";
import { progress } from "../../core/log";
import { DrillCheck } from "../../store/records";

/** The next step when a check finds the backup damaged. */
export const DAMAGED =
  "Do not count on this backup: find the damage with `edms-ops verify <id>`, and repair the repository before relying on a new backup.";

/** Runs the steps of a drill, each one timed and recorded, the failures as well as the passes. */
export class Checks {
  readonly list: DrillCheck[] = [];

  async run(name: string, step: () => Promise<string>): Promise<boolean> {
    const started = Date.now();
    progress(`drill: ${name}`);
    try {
      const detail = await step();
      this.list.push({ name, ok: true, detail, seconds: (Date.now() - started) / 1000 });
      return true;
    } catch (err) {
      this.failed(name, err as Error, (Date.now() - started) / 1000);
      progress(`drill: ${name} FAILED: ${(err as Error).message.split("\n")[0]}`);
      return false;
    }
  }

  /** Records `name` as failed by `err`: on the host when a HostFault stopped it (hostFault.ts). */
  failed(name: string, err: Error, seconds: number): void {
    const host = err instanceof HostFault;
    this.list.push({ name, ok: false, detail: err.message, seconds, ...(host ? { host } : {}) });
  }

  /**
   * Runs `parts` at once, each recording into checks of its own, then records theirs in the order given. Every
   * part ends before a failure of one is thrown (nothing is recorded then).
   */
  async together(parts: readonly ((checks: Checks) => Promise<unknown>)[]): Promise<void> {
    const lists = parts.map(() => new Checks());
    await allSettledOrThrow(parts.map((part, i) => part(lists[i])));
    lists.forEach((own) => this.list.push(...own.list));
  }

  skip(name: string, why: string): void {
    this.list.push({ name, ok: false, detail: `not run: ${why}`, seconds: 0 });
  }
}
