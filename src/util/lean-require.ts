// Some dependencies' index modules load far more than we use — undici's all of undici (fetch,
// WebSocket, caches, mocks: 110 modules), prom-client's default process metrics and OpenTelemetry —
// and every command pays for that at start-up (issue 13). leanRequire loads the few internal
// modules we use instead; should a release move them, it loads the package's index.
import { createRequire } from 'node:module';

const requireFromHere = createRequire(import.meta.url);

export function leanRequire<T, I>(pkg: string, lean: (req: NodeJS.Require) => T, whole: (index: I) => T): T {
  try {
    return lean(requireFromHere);
  } catch {
    return whole(requireFromHere(pkg) as I);
  }
}
