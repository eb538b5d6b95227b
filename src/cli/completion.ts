// Shell completion scripts generated from the commander tree itself, so a new command or
// flag is completed the day it lands and a removed one never lingers (no hand-kept lists).
// Words are completed from the tree; option values and arguments that name files or
// directories fall back to the shell's own file completion.
import type { Argument, Command, Option } from 'commander';

export const COMPLETION_SHELLS = ['bash', 'zsh', 'fish'] as const;
export type CompletionShell = (typeof COMPLETION_SHELLS)[number];

/** What a value (of an option or an argument) is completed with. */
type ValueKind = { kind: 'file' } | { kind: 'dir' } | { kind: 'none' } | { kind: 'choices'; choices: readonly string[] };

interface OptionSpec {
  flags: string[];
  description: string;
  /** Undefined for a boolean flag. */
  value?: ValueKind;
}

interface CommandSpec {
  /** Words after the program name, e.g. ['cache', 'prune']; [] is the program itself. */
  path: string[];
  description: string;
  options: OptionSpec[];
  subcommands: string[];
  args: ValueKind[];
}

/** Names of values that are paths on this machine (the rest are image references, sizes, ...). */
const DIR_VALUES = new Set(['dest', 'mountpoint', 'dir', 'cert-dir', 'hosts-dir']);
const FILE_VALUES = new Set(['file', 'authfile', 'path']);

function valueKind(name: string, choices?: readonly string[]): ValueKind {
  if (choices && choices.length > 0) return { kind: 'choices', choices };
  if (DIR_VALUES.has(name)) return { kind: 'dir' };
  if (FILE_VALUES.has(name)) return { kind: 'file' };
  return { kind: 'none' };
}


function optionSpec(option: Option): OptionSpec {
  const flags = [option.short, option.long].filter((f): f is string => typeof f === 'string');
  const spec: OptionSpec = { flags, description: option.description };
  if (option.required || option.optional) {
    const m = /[<[]([^>\]]+)[>\]]/.exec(option.flags);
    spec.value = valueKind(m?.[1] ?? '', option.argChoices);
  }
  return spec;
}

function argumentKind(arg: Argument): ValueKind {
  return valueKind(arg.name(), arg.argChoices);
}

export function describeProgram(program: Command): CommandSpec[] {
  const out: CommandSpec[] = [];
  const visit = (cmd: Command, path: string[]): void => {
    const visible = cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden);
    const options = cmd.options.filter((o) => !o.hidden).map(optionSpec);
    options.push({ flags: ['-h', '--help'], description: 'display help for command' });
    out.push({
      path,
      description: cmd.description(),
      options,
      subcommands: visible.flatMap((c) => [c.name(), ...c.aliases()]),
      args: cmd.registeredArguments.map(argumentKind),
    });
    for (const c of visible) for (const name of [c.name(), ...c.aliases()]) visit(c, [...path, name]);
  };
  visit(program, []);
  return out;
}

export function completionScript(program: Command, shell: CompletionShell): string {
  const specs = describeProgram(program);
  const name = program.name();
  switch (shell) {
    case 'bash':
      return bashScript(name, specs);
    case 'zsh':
      return zshScript(name, specs);
    case 'fish':
      return fishScript(name, specs);
  }
}

const shellWord = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;
const identifier = (s: string): string => s.replace(/[^A-Za-z0-9]/g, '_');

// ---- bash: one function; the command path is the non-option words seen so far ----

function bashValue(v: ValueKind | undefined): string {
  switch (v?.kind) {
    case 'dir':
      return 'COMPREPLY=($(compgen -d -- "$cur"))';
    case 'file':
      return 'COMPREPLY=($(compgen -f -- "$cur"))';
    case 'choices':
      return `COMPREPLY=($(compgen -W ${shellWord(v.choices.join(' '))} -- "$cur"))`;
    default:
      return 'COMPREPLY=()';
  }
}

function bashScript(name: string, specs: CommandSpec[]): string {
  const fn = `_${identifier(name)}`;
  const cases: string[] = [];
  for (const s of specs) {
    const key = s.path.join(' ');
    const valueFlags = s.options.filter((o) => o.value);
    const optionValueCase = valueFlags.map((o) => `        ${o.flags.join('|')}) ${bashValue(o.value)}; return ;;`).join('\n');
    const argCases = s.args.map((a, i) => `        ${i}) ${bashValue(a)} ;;`).join('\n');
    cases.push(
      [
        `    ${shellWord(key)})`,
        `      case "$prev" in`,
        optionValueCase,
        `      esac`,
        `      if [[ "$cur" == -* ]]; then COMPREPLY=($(compgen -W ${shellWord(s.options.flatMap((o) => o.flags).join(' '))} -- "$cur")); return; fi`,
        s.subcommands.length > 0
          ? `      COMPREPLY=($(compgen -W ${shellWord(s.subcommands.join(' '))} -- "$cur"))`
          : [`      case "$nargs" in`, argCases, `        *) COMPREPLY=() ;;`, `      esac`].join('\n'),
        `      ;;`,
      ]
        .filter((l) => l !== '')
        .join('\n'),
    );
  }
  // Options that take a value, per command: their value is not a command word or an argument.
  const takesValue = specs.map((s) => `    ${shellWord(s.path.join(' '))}) echo ${shellWord(s.options.filter((o) => o.value).flatMap((o) => o.flags).join(' '))} ;;`).join('\n');
  const commandWords = specs.filter((s) => s.subcommands.length > 0).map((s) => `    ${shellWord(s.path.join(' '))}) echo ${shellWord(s.subcommands.join(' '))} ;;`).join('\n');
  return `# bash completion for ${name} (generated by \`${name} completion bash\`)
${fn}_value_flags() {
  case "$1" in
${takesValue}
  esac
}
${fn}_subcommands() {
  case "$1" in
${commandWords}
  esac
}
${fn}() {
  local cur="\${COMP_WORDS[COMP_CWORD]}" prev="\${COMP_WORDS[COMP_CWORD-1]}"
  local path="" nargs=0 i word skip=0
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="\${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    if [[ "$word" == -* ]]; then
      [[ " $(${fn}_value_flags "$path") " == *" $word "* ]] && skip=1
      continue
    fi
    if [[ " $(${fn}_subcommands "$path") " == *" $word "* ]]; then
      path="\${path:+$path }$word"
    else
      nargs=$((nargs + 1))
    fi
  done
  case "$path" in
${cases.join('\n')}
  esac
}
complete -o default -F ${fn} ${name}
`;
}

// ---- zsh: _arguments per command path, with descriptions ----

const zshEscape = (s: string): string => s.replace(/\\/g, '\\\\').replace(/'/g, `'\\''`).replace(/[[\]:]/g, '\\$&');

function zshAction(v: ValueKind | undefined): string {
  switch (v?.kind) {
    case 'dir':
      return '_files -/';
    case 'file':
      return '_files';
    case 'choices':
      return `(${v.choices.join(' ')})`;
    default:
      return ' ';
  }
}

function zshScript(name: string, specs: CommandSpec[]): string {
  const fn = `_${identifier(name)}`;
  const functions = specs.map((s) => {
    const id = `${fn}${s.path.map((p) => `_${identifier(p)}`).join('')}`;
    const opts = s.options.map((o) => {
      const names = o.flags.length > 1 ? `'(${o.flags.join(' ')})'{${o.flags.join(',')}}` : `'${o.flags[0]}`;
      const tail = `[${zshEscape(o.description)}]${o.value ? `:value:${zshAction(o.value)}` : ''}'`;
      return o.flags.length > 1 ? `${names}'${tail}` : `${names}${tail}`;
    });
    let body: string[];
    if (s.subcommands.length > 0) {
      const children = specs.filter((c) => c.path.length === s.path.length + 1 && s.path.every((p, i) => c.path[i] === p));
      const described = children.map((c) => `    ${shellWord(`${c.path[c.path.length - 1]!.replace(/:/g, '\\:')}:${c.description}`)}`);
      body = [
        `  local -a commands; commands=(`,
        ...described,
        `  )`,
        `  _arguments -C ${opts.join(' ')} '1: :->cmd' '*:: :->rest'`,
        `  case $state in`,
        `    cmd) _describe command commands ;;`,
        `    rest) case $words[1] in`,
        ...children.map((c) => `      ${c.path[c.path.length - 1]}) ${fn}${c.path.map((p) => `_${identifier(p)}`).join('')} ;;`),
        `    esac ;;`,
        `  esac`,
      ];
    } else {
      const args = s.args.map((a, i) => `'${i + 1}: :${zshAction(a)}'`);
      body = [`  _arguments ${[...opts, ...args].join(' ')}`];
    }
    return [`${id}() {`, ...body, `}`].join('\n');
  });
  return `#compdef ${name}
# zsh completion for ${name} (generated by \`${name} completion zsh\`)
${functions.join('\n')}
compdef ${fn} ${name}
`;
}

// ---- fish: one `complete` line per command word and option ----

function fishScript(name: string, specs: CommandSpec[]): string {
  const lines = [`# fish completion for ${name} (generated by \`${name} completion fish\`)`, `complete -c ${name} -f`];
  for (const s of specs) {
    // At this command: every word of its path seen, and none of its subcommands yet.
    const seen = s.path.map((p) => `__fish_seen_subcommand_from ${p}`);
    const notDeeper = s.subcommands.length > 0 ? [`not __fish_seen_subcommand_from ${s.subcommands.join(' ')}`] : [];
    const condition = s.path.length === 0 ? ['__fish_use_subcommand'] : [...seen, ...notDeeper];
    const cond = `-n ${shellWord(condition.join('; and '))}`;
    const children = specs.filter((c) => c.path.length === s.path.length + 1 && s.path.every((p, i) => c.path[i] === p));
    for (const c of children) lines.push(`complete -c ${name} ${cond} -a ${shellWord(c.path[c.path.length - 1]!)} -d ${shellWord(c.description)}`);
    for (const o of s.options) {
      const parts = o.flags.map((f) => (f.startsWith('--') ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`));
      let value = '';
      if (o.value?.kind === 'choices') value = ` -x -a ${shellWord(o.value.choices.join(' '))}`;
      else if (o.value?.kind === 'file' || o.value?.kind === 'dir') value = ' -r -F';
      else if (o.value) value = ' -x';
      lines.push(`complete -c ${name} ${cond} ${parts.join(' ')} -d ${shellWord(o.description)}${value}`);
    }
    if (s.subcommands.length === 0 && s.args.some((a) => a.kind === 'dir' || a.kind === 'file')) lines.push(`complete -c ${name} ${cond} -F`);
  }
  return lines.join('\n') + '\n';
}
