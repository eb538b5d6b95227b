// Fake Docker credential helpers for tests: `docker-credential-NAME` scripts (node, run as a
// user's helper is run: found on PATH) that keep their store in a JSON state file beside them,
// log every call (action and server, never the secret), and can misbehave on request.
import { appendFile, chmod, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface HelperEntry {
  Username: string;
  Secret: string;
}

export interface HelperState {
  /** Server URL → credentials. */
  store: Record<string, HelperEntry>;
  /** Never answer (and keep a grandchild `sleep` holding the pipes). */
  hang?: boolean;
  /** Written to stderr on every call. */
  stderr?: string;
  /** `get` fails with this exit status and stderr. */
  fail?: { code: number; stderr: string };
}

export interface FakeHelper {
  name: string;
  /** The directory to put on PATH. */
  dir: string;
  calls(): Promise<Array<{ action: string; server: string }>>;
  state(): Promise<HelperState>;
  setState(state: HelperState): Promise<void>;
}

const script = (stateFile: string, callsFile: string): string => `#!${process.execPath}
const fs = require('fs');
const STATE = ${JSON.stringify(stateFile)};
const state = JSON.parse(fs.readFileSync(STATE, 'utf8'));
const action = process.argv[2];
let input = '';
process.stdin.on('data', (d) => (input += d));
process.stdin.on('end', () => {
  const server = action === 'store' ? JSON.parse(input).ServerURL : input.trim();
  fs.appendFileSync(${JSON.stringify(callsFile)}, JSON.stringify({ action, server }) + '\\n');
  if (state.stderr) process.stderr.write(state.stderr);
  if (state.hang) {
    require('child_process').spawn('sleep', ['120'], { stdio: 'inherit' });
    setInterval(() => undefined, 1000);
    return;
  }
  const save = () => fs.writeFileSync(STATE, JSON.stringify(state));
  if (action === 'get') {
    if (state.fail) {
      process.stderr.write(state.fail.stderr);
      process.exit(state.fail.code);
    }
    const e = state.store[server];
    if (!e) {
      process.stdout.write('credentials not found in native keychain\\n');
      process.exit(1);
    }
    process.stdout.write(JSON.stringify({ ServerURL: server, Username: e.Username, Secret: e.Secret }));
  } else if (action === 'store') {
    const d = JSON.parse(input);
    state.store[d.ServerURL] = { Username: d.Username, Secret: d.Secret };
    save();
  } else if (action === 'erase') {
    if (!state.store[server]) {
      process.stdout.write('credentials not found in native keychain\\n');
      process.exit(1);
    }
    delete state.store[server];
    save();
  } else process.exit(3);
});
`;

/** Writes docker-credential-NAME into dir (put dir on PATH). */
export async function writeCredHelper(dir: string, name: string, state: HelperState): Promise<FakeHelper> {
  const stateFile = join(dir, `${name}.state.json`);
  const callsFile = join(dir, `${name}.calls.jsonl`);
  const program = join(dir, `docker-credential-${name}`);
  await writeFile(stateFile, JSON.stringify(state));
  await appendFile(callsFile, '');
  await writeFile(program, script(stateFile, callsFile));
  await chmod(program, 0o755);
  return {
    name,
    dir,
    async calls() {
      return (await readFile(callsFile, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as { action: string; server: string });
    },
    async state() {
      return JSON.parse(await readFile(stateFile, 'utf8')) as HelperState;
    },
    async setState(s) {
      await writeFile(stateFile, JSON.stringify(s));
    },
  };
}

/** An environment that sees only the test's credential files and helpers (none of the user's). */
export function isolatedEnv(home: string, pathDirs: string[] = []): NodeJS.ProcessEnv {
  return {
    HOME: home,
    PATH: [...pathDirs, process.env.PATH ?? '/usr/bin:/bin'].join(':'),
    DOCKER_CONFIG: join(home, '.docker'),
    XDG_CONFIG_HOME: join(home, '.config'),
    XDG_RUNTIME_DIR: join(home, 'run'),
    REGISTRY_AUTH_FILE: '',
    STARGZ_GET_USERNAME: '',
    STARGZ_GET_PASSWORD: '',
  };
}
