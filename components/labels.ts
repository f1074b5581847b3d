import * as docker from "@pulumi/docker";
import { Settings } from "./config";

/** Labels every resource carries, so `docker ps/volume ls --filter label=edms.stack=…` finds a stack's parts. */
export function stackLabels(
  settings: Settings,
  extra: Record<string, string> = {},
): docker.types.input.VolumeLabel[] {
  const all: Record<string, string> = {
    "edms.stack": settings.stack,
    "edms.environment": settings.environment,
    ...extra,
  };
  return Object.entries(all).map(([label, value]) => ({ label, value }));
}
