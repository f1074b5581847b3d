/**
 * Network reachability as a process inside a container sees it: can it open a TCP connection? Needs python3
 * in the container (the sample app's image and the offline proxy image have it).
 */
import { docker } from "../../ops/engine/docker";

export interface Reach {
  readonly ok: boolean;
  /** Why not: the error's last line (name not resolved, timed out, unreachable). */
  readonly detail: string;
}

const CONNECT =
  "import socket,sys\nsocket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3).close()";

/** From inside the running `container`. */
export async function reachFrom(container: string, host: string, port: number): Promise<Reach> {
  return reach(["exec", container, "python3", "-c", CONNECT, host, String(port)]);
}

/** From a throwaway container of `image` attached to `network` only (labelled, so a destroy removes it). */
export async function reachFromNetwork(
  network: string,
  image: string,
  labels: string[],
  host: string,
  port: number,
): Promise<Reach> {
  const run = ["run", "--rm", "--network", network, ...labels.flatMap((l) => ["--label", l])];
  return reach([...run, "--entrypoint", "python3", image, "-c", CONNECT, host, String(port)]);
}

async function reach(args: string[]): Promise<Reach> {
  const result = await docker(args, { allowFailure: true });
  const detail = result.stderr.trim().split("\n").pop() ?? "";
  return { ok: result.code === 0, detail: result.code === 0 ? "connected" : detail };
}

/** The IPv4 address of `container` on `network` ("" when it is not on it). */
export async function addressOn(container: string, network: string): Promise<string> {
  const format = `{{with index .NetworkSettings.Networks "${network}"}}{{.IPAddress}}{{end}}`;
  return (await docker(["inspect", "-f", format, container])).stdout.trim();
}

/** The networks `container` is attached to, sorted. */
export async function networksOf(container: string): Promise<string[]> {
  const format = "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}}\n{{end}}";
  return (await docker(["inspect", "-f", format, container])).stdout
    .split("\n")
    .filter(Boolean)
    .sort();
}
