import * as tar from "tar-stream";

export interface TarEntry {
  readonly name: string;
  readonly content: string;
  readonly mode: number;
}

/** An in-memory tar of small files (secrets for `docker cp -`). Listeners are attached before finalize. */
export function tarball(entries: readonly TarEntry[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const pack = tar.pack();
    const chunks: Buffer[] = [];
    pack.on("data", (chunk: unknown) => chunks.push(chunk as Buffer));
    pack.on("end", () => resolve(Buffer.concat(chunks)));
    pack.on("error", reject);
    for (const entry of entries) {
      pack.entry({ name: entry.name, mode: entry.mode }, entry.content);
    }
    pack.finalize();
  });
}
