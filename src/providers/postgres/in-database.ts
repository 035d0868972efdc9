/**
 * Reading objects that live inside a database (schemas, grants, extensions):
 * the batch is split by database and each database is read with one query on
 * its own connection. A database that does not exist yet (it is created by the
 * same apply) reads as holding nothing.
 */
import { groupBy } from '../../util/group-by.js';
import { isMissingDatabase, type PostgresHandle } from './server.js';

export async function readPerDatabase<Spec extends { readonly database: string }, Live>(
  handle: PostgresHandle,
  specs: readonly Spec[],
  readOne: (database: string, specs: readonly Spec[]) => Promise<(Live | null)[]>,
): Promise<(Live | null)[]> {
  const out = new Array<Live | null>(specs.length).fill(null);
  const indexed = specs.map((spec, index) => ({ spec, index }));
  await Promise.all(
    [...groupBy(indexed, (s) => s.spec.database)].map(async ([database, group]) => {
      let lives: (Live | null)[];
      try {
        lives = await readOne(database, group.map((g) => g.spec));
      } catch (err) {
        if (isMissingDatabase(err)) return;
        throw err;
      }
      group.forEach((g, i) => (out[g.index] = lives[i] ?? null));
    }),
  );
  return out;
}
