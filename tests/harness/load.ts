/**
 * A steady stream of GET requests through the stack's published port, on loopback only and bounded in count
 * and time: each lane sends one request at a time (so within a lane "which release answered" has a strict
 * order), one lane on a fresh connection per request, one on keep-alive connections. Nothing is asserted
 * here; timings are reported, not tested.
 */
import * as http from "http";

export interface Sample {
  readonly lane: number;
  readonly start: number;
  readonly ms: number;
  readonly status: number | null;
  /** `version` from /health/'s body. */
  readonly version: string | null;
  /** The proxy's X-Edms-Release header. */
  readonly header: string | null;
  readonly error?: string;
}

export interface StreamReport {
  readonly samples: readonly Sample[];
  readonly requests: number;
  /** Answers other than 200. */
  readonly failed: Sample[];
  /** Connection refused/reset, timeouts: no HTTP answer at all. */
  readonly errors: Sample[];
  /** Per lane, the releases in the order they answered, consecutive repeats collapsed. */
  readonly versionsByLane: string[][];
  readonly longestMs: number;
  /** Longest response among requests started within 2 s of a lane's first answer from the new release. */
  readonly longestAroundSwitchMs: number | null;
}

const MAX_REQUESTS = 20_000;
const MAX_SECONDS = 600;

export class LoadStream {
  private readonly samples: Sample[] = [];
  private stopped = false;
  private lanes: Promise<void>[] = [];

  constructor(
    readonly port: number,
    readonly path = "/health/",
  ) {}

  start(): this {
    const began = Date.now();
    const keepAlive = new http.Agent({ keepAlive: true, maxSockets: 1 });
    const lane = async (id: number, agent: http.Agent | false) => {
      while (
        !this.stopped &&
        this.samples.length < MAX_REQUESTS &&
        Date.now() - began < MAX_SECONDS * 1000
      ) {
        this.samples.push(await this.one(id, agent));
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    this.lanes = [lane(0, false), lane(1, keepAlive)];
    return this;
  }

  private one(lane: number, agent: http.Agent | false): Promise<Sample> {
    const start = Date.now();
    return new Promise((resolve) => {
      const done = (s: Omit<Sample, "lane" | "start" | "ms">) =>
        resolve({ lane, start, ms: Date.now() - start, ...s });
      const req = http.get(
        { host: "127.0.0.1", port: this.port, path: this.path, agent, timeout: 30_000 },
        (res) => {
          let body = "";
          res.on("data", (d: Buffer) => (body += d.toString()));
          res.on("end", () => {
            let version: string | null = null;
            try {
              version = (JSON.parse(body) as { version?: string }).version ?? null;
            } catch {
              version = null;
            }
            const header = res.headers["x-edms-release"];
            done({ status: res.statusCode ?? null, version, header: (header as string) ?? null });
          });
          res.on("error", (e) =>
            done({ status: null, version: null, header: null, error: e.message }),
          );
        },
      );
      req.on("timeout", () => req.destroy(new Error("timeout")));
      req.on("error", (e: NodeJS.ErrnoException) =>
        done({ status: null, version: null, header: null, error: e.code ?? e.message }),
      );
    });
  }

  async stop(): Promise<StreamReport> {
    this.stopped = true;
    await Promise.all(this.lanes);
    const versionsByLane = [0, 1].map((lane) =>
      this.samples
        .filter((s) => s.lane === lane && s.version !== null)
        .map((s) => s.version as string)
        .filter((v, i, all) => i === 0 || all[i - 1] !== v),
    );
    const switchStarts = [0, 1]
      .map((lane) => {
        const answered = this.samples.filter((s) => s.lane === lane && s.version !== null);
        const first = answered.findIndex((s) => s.version !== answered[0].version);
        return first > 0 ? answered[first].start : null;
      })
      .filter((t): t is number => t !== null);
    const around = this.samples.filter((s) =>
      switchStarts.some((t) => Math.abs(s.start - t) <= 2000),
    );
    return {
      samples: this.samples,
      requests: this.samples.length,
      failed: this.samples.filter((s) => s.status !== null && s.status !== 200),
      errors: this.samples.filter((s) => s.status === null),
      versionsByLane,
      longestMs: Math.max(0, ...this.samples.map((s) => s.ms)),
      longestAroundSwitchMs: around.length ? Math.max(...around.map((s) => s.ms)) : null,
    };
  }
}

export function summary(what: string, r: StreamReport): string {
  return (
    `      (${what}: ${r.requests} requests, ${r.failed.length} failed, ${r.errors.length} connection errors, ` +
    `releases ${r.versionsByLane.map((v) => v.join("→")).join(" | ")}, longest ${r.longestMs} ms` +
    `${r.longestAroundSwitchMs === null ? "" : `, longest within 2 s of the switch ${r.longestAroundSwitchMs} ms`})`
  );
}
