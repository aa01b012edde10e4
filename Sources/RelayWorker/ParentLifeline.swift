import ArgumentParser
import Logging
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// `--exit-with-stdin`: labctrl keeps the write end of its worker's stdin open for the worker's life, so
/// the end of stdin means the controller is gone, even when it was SIGKILLed (nothing else tells a child).
/// The worker then stops as on SIGTERM: no single-mode worker outlives its controller (docs/protocol.md §1).
enum ParentLifeline {
    /// A private copy of stdin (close-on-exec, so agents never inherit it), taken before the token is read
    /// from stdin and stdin is pointed at /dev/null.
    static func takeStdin() throws -> CInt {
        let fd = fcntl(0, F_DUPFD_CLOEXEC, 3)
        guard fd >= 0 else { throw ValidationError("--exit-with-stdin: stdin is not open") }
        return fd
    }

    /// Watches `fd` on an event loop (no thread blocks on it); at its end, signals this process SIGTERM.
    static func watch(_ fd: CInt, logger: Logger) async throws {
        do {
            _ = try await NIOPipeBootstrap(group: MultiThreadedEventLoopGroup.singleton)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(EndHandler(logger: logger)) }
                }
                .takingOwnershipOfDescriptor(input: fd).get()
        } catch {
            close(fd)
            throw ValidationError("--exit-with-stdin: stdin must be a pipe or socket (\(error))")
        }
    }

    private final class EndHandler: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let logger: Logger
        init(logger: Logger) { self.logger = logger }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {}  // nothing more is sent; ignored
        func channelInactive(context: ChannelHandlerContext) {
            logger.warning("stdin ended: the controller is gone; stopping")
            kill(getpid(), SIGTERM)
        }
        func errorCaught(context: ChannelHandlerContext, error: any Error) { context.close(promise: nil) }
    }
}
