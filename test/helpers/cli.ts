// Runs the stargz-get CLI the way a user does: the real binary in a child process.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cliPath, projectRoot } from './paths.js';
import { trackPid, untrackPid } from './tmp.js';

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** `prefix`: a command the CLI runs under, e.g. hermetic-dns.ts's private resolver. */
export function runCli(args: string[], options: { input?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; prefix?: string[] } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const [cmd, ...pre] = [...(options.prefix ?? []), process.execPath];
    const child = spawn(cmd!, [...pre, cliPath, ...args], {
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 120_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(options.input ?? '');
  });
}

/** Runs the CLI and samples its peak RSS (VmHWM) until it exits. */
export function runMeasured(args: string[]): Promise<{ code: number | null; stderr: string; peakRss: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    trackPid(child.pid!);
    let stderr = '';
    let peakRss = 0;
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const sample = (): void => {
      let status = '';
      try {
        status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
      } catch {
        // exited between samples
      }
      const m = /VmHWM:\s+(\d+) kB/.exec(status);
      if (m) peakRss = Math.max(peakRss, Number(m[1]) * 1024);
    };
    const timer = setInterval(sample, 20);
    child.on('error', reject);
    child.on('close', (code) => {
      clearInterval(timer);
      untrackPid(child.pid!);
      resolve({ code, stderr, peakRss });
    });
  });
}

/** Runs a tool (the reference converter, say) from the project root; rejects with its stderr unless it exits 0. */
export function execOk(cmd: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'], cwd: projectRoot });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('close', (code) => (code === 0 ? resolve() : reject(new Error(`${cmd} exited ${code}: ${err}`))));
  });
}
