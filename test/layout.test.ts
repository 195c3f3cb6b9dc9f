import { readdirSync, readFileSync } from 'node:fs'
import { dirname, join, relative } from 'node:path'
import t from 'tap'

/*
 * The layout rules of the README's Development section: lib/ has no import cycles (type imports
 * included, so the folders stay a hierarchy a newcomer can read top-down) and no file of much over
 * 300 lines.
 */

const root = join(__dirname, '..')

function sources (dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name)
    return entry.isDirectory() ? sources(path) : path.endsWith('.ts') ? [path] : []
  })
}

function importsOf (file: string): string[] {
  const text = readFileSync(file, 'utf8')
  return [...text.matchAll(/from '(\.[^']+)'/g)].map((match) => join(dirname(file), `${match[1]}.ts`))
}

/** Every cycle found by a depth-first walk, each as the list of files around it. */
function cyclesOf (graph: Map<string, string[]>): string[][] {
  const state = new Map<string, 'open' | 'done'>()
  const stack: string[] = []
  const cycles: string[][] = []
  const visit = (file: string): void => {
    state.set(file, 'open')
    stack.push(file)
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next])
      else if (!state.has(next)) visit(next)
    }
    stack.pop()
    state.set(file, 'done')
  }
  for (const file of graph.keys()) if (!state.has(file)) visit(file)
  return cycles
}

const files = sources(join(root, 'lib'))

t.test('lib/ has no import cycles', async (t) => {
  const graph = new Map(files.map((file) => [file, importsOf(file)]))
  t.same(cyclesOf(graph).map((cycle) => cycle.map((file) => relative(root, file))), [])
  t.same(cyclesOf(new Map([['a', ['b']], ['b', ['c']], ['c', ['a']]])), [['a', 'b', 'c', 'a']], 'the check finds a cycle')
})

t.test('every lib/ file stays under ~300 lines', async (t) => {
  const long = files.filter((file) => readFileSync(file, 'utf8').split('\n').length > 320).map((file) => relative(root, file))
  t.same(long, [])
})
