/**
 * The entry point of the single-file edms-ops bundle (build/scheduler/edms-ops.cjs, made by `npm run build`)
 * that the scheduler image carries: node and this file are all it needs on the Docker host.
 */
import { main } from "./cli";

void main(process.argv);
