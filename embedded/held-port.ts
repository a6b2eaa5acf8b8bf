// The embedded server's port, bound by couchlog itself and handed to each
// child it starts (as file descriptor 3), so that the port never falls
// free while couchlog runs: when the child dies, the socket it listened on
// stays open in couchlog, still listening, and any other process's bind
// fails (EADDRINUSE). Connections made meanwhile wait in the socket's
// backlog and are answered by the restarted child. Without this, a local
// user who took the port in the moment between a crash and the restart was
// sent every credential the ingress and the correlator use. Until the first
// child listens, the socket is only bound, and a process that sets
// SO_REUSEADDR (as libuv does) may still listen on the port first; the
// child then cannot, and the supervisor, which sees a listener that is not
// its own (port-holder.ts), refuses it before anything is sent there.
import net from 'node:net';
import { fstatSync } from 'node:fs';
import { getSystemErrorName } from 'node:util';

/** The file descriptor the child finds the socket on (embedded/listen-on-inherited-socket.cts). */
export const INHERITED_FD = 3;

interface TcpHandle {
  fd: number;
  close(): void;
}

/**
 * Node's own: a TCP socket bound to an address, not yet listening (what
 * the cluster module hands its workers). Not in @types/node: typed here.
 * A negative number is an errno.
 */
type CreateServerHandle = (address: string, port: number, addressType: 4 | 6, fd?: number, flags?: number) => TcpHandle | number;

export class HeldPort {
  private constructor(
    private readonly handle: TcpHandle,
    /** The socket's inode: how /proc tells this socket from another (embedded/port-holder.ts). */
    readonly inode: number,
  ) {}

  get fd(): number {
    return this.handle.fd;
  }

  /**
   * Binds `address` (an IP address) and `port`. Null when this Node has no
   * way to (its internals changed): the child then binds the port itself.
   * Throws the errno name (EADDRINUSE, EACCES) when the bind fails.
   */
  static bind(address: string, port: number): HeldPort | null {
    const create = (net as unknown as { _createServerHandle?: CreateServerHandle })._createServerHandle;
    if (typeof create !== 'function') return null;
    const handle = create(address, port, net.isIPv6(address) ? 6 : 4);
    if (typeof handle === 'number') throw Object.assign(new Error(getSystemErrorName(handle)), { code: getSystemErrorName(handle) });
    if (!(handle.fd >= 0)) {
      handle.close();
      return null;
    }
    return new HeldPort(handle, fstatSync(handle.fd).ino);
  }

  close(): void {
    this.handle.close();
  }
}
