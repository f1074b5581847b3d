import type * as docker from "@pulumi/docker";
import { stackLabelMap } from "../model/labels";
import { Settings } from "../model/settings";

/** The stack's labels (model/labels.ts) in the shape the docker provider takes. */
export function stackLabels(
  settings: Settings,
  extra: Record<string, string> = {},
): docker.types.input.VolumeLabel[] {
  return Object.entries(stackLabelMap(settings, extra)).map(([label, value]) => ({ label, value }));
}
