import CFFmpeg
import Foundation
import PGTensor
import Testing
@testable import PGMedia

/// Phone clips: landscape pictures tagged with a display matrix (issue 18.3: they came out sideways).
struct OrientationTests {
    /// Copies `input`'s video stream into a .mov tagged with a display matrix whose rotation is
    /// `rotation` as ffprobe reports it (`av_display_rotation_get`; a phone's portrait clip says
    /// -90), mirrored when asked.
    static func tagged(_ input: URL, _ output: URL, rotation: Double, mirror: Bool = false) throws {
        var inCtx: UnsafeMutablePointer<AVFormatContext>?
        guard avformat_open_input(&inCtx, input.path, nil, nil) >= 0, avformat_find_stream_info(inCtx, nil) >= 0 else {
            throw MediaError(.failed, path: input.path, "cannot open the clip to tag")
        }
        defer { avformat_close_input(&inCtx) }
        var outCtx: UnsafeMutablePointer<AVFormatContext>?
        guard avformat_alloc_output_context2(&outCtx, nil, nil, output.path) >= 0, let out = outCtx else {
            throw MediaError(.failed, path: output.path, "cannot make the tagged clip")
        }
        defer { if out.pointee.pb != nil { avio_closep(&out.pointee.pb) }; avformat_free_context(out) }
        let src = inCtx!.pointee.streams[0]!
        let dst = avformat_new_stream(out, nil)!
        guard avcodec_parameters_copy(dst.pointee.codecpar, src.pointee.codecpar) >= 0 else { throw MediaError(.failed, path: output.path, "copy") }
        dst.pointee.codecpar.pointee.codec_tag = 0
        dst.pointee.time_base = src.pointee.time_base
        guard pg_stream_set_display_rotation(dst, -rotation, mirror ? 1 : 0) >= 0,
              avio_open(&out.pointee.pb, output.path, AVIO_FLAG_WRITE) >= 0,
              avformat_write_header(out, nil) >= 0 else { throw MediaError(.failed, path: output.path, "header") }
        let packet = av_packet_alloc()
        defer { var p = packet; av_packet_free(&p) }
        while av_read_frame(inCtx, packet) >= 0 {
            av_packet_rescale_ts(packet, src.pointee.time_base, dst.pointee.time_base)
            packet!.pointee.stream_index = 0
            guard av_interleaved_write_frame(out, packet) >= 0 else { throw MediaError(.failed, path: output.path, "write") }
        }
        guard av_write_trailer(out) >= 0 else { throw MediaError(.failed, path: output.path, "trailer") }
    }

    /// A stored 48×32 clip with a bright block near its top-left corner, losslessly encoded.
    static func storedClip(in dir: TempFolder) throws -> URL {
        let url = dir.file("stored.mp4")
        let writer = try VideoWriter(url, settings: EncoderSettings(codec: .h264, crf: 0, chroma: .yuv444p))
        for t in 0..<3 {
            var f = Synthetic.frame(t, width: 48, height: 32)
            for c in 0..<3 { for y in 2..<8 { for x in 3..<12 { f[c, y, x] = 1 } } }
            try writer.append(f)
        }
        try writer.finish()
        return url
    }

    @Test(arguments: [(-90.0, false, Orientation.clockwise), (90, false, .counterClockwise), (180, false, .upsideDown),
                      (0, true, .mirrored), (-90, true, .transposed), (90, true, .antiTransposed)])
    func aTaggedClipIsTurnedUprightAsPlayersShowIt(degrees: Double, mirror: Bool, expected: Orientation) throws {
        let dir = TempFolder()
        defer { dir.remove() }
        let stored = try Self.storedClip(in: dir)
        let phone = dir.file("phone.mov")
        try Self.tagged(stored, phone, rotation: degrees, mirror: mirror)
        let info = try VideoReader.probe(phone)
        #expect(info.orientation == expected, "\(degrees)° mirror \(mirror): \(info.orientation)")
        #expect(info.size == ImageSize(width: 48, height: 32))
        let plain = try VideoReader(stored).next()!
        let turned = try VideoReader(phone).next()!
        #expect(turned.rgb == expected.apply(plain.rgb), "\(degrees)° mirror \(mirror): the upright frame is the stored one turned")
        #expect(turned.rgb.shape == (expected.swapsAxes ? [3, 48, 32] : [3, 32, 48]))
        // Kept as stored on request; size and fit apply to the turned picture.
        #expect(try VideoReader(phone, upright: false).next()!.rgb == plain.rgb)
        let sized = try VideoReader(phone, size: ImageSize(width: 20, height: 20), fit: .crop)
        #expect(sized.outputSize == ImageSize(width: 20, height: 20) && sized.orientation == expected)
        #expect(try sized.next()!.rgb.shape == [3, 20, 20])
    }

    @Test func aPortraitPhoneClipShowsItsTopLeftCornerAtTheTopRight() throws {
        // Phones hold the sensor landscape: a portrait clip is stored rotated and tagged -90°.
        let dir = TempFolder()
        defer { dir.remove() }
        let phone = dir.file("phone.mov")
        try Self.tagged(try Self.storedClip(in: dir), phone, rotation: -90)
        let f = try VideoReader(phone).next()!.rgb   // [3, 48, 32]: portrait
        #expect(f.shape == [3, 48, 32])
        // The stored block (rows 2…7, columns 3…11) lands at rows 3…11, columns 24…29.
        #expect(f[0, 6, 26] > 0.95 && f[1, 6, 26] > 0.95 && f[2, 6, 26] > 0.95)
        #expect(!(f[0, 6, 5] > 0.95 && f[1, 6, 5] > 0.95 && f[2, 6, 5] > 0.95))
    }

    @Test func everyOrientationMapsASmallImageAsItsNameSays() {
        // 2×3 image with values 1…6 row by row: 1 2 3 / 4 5 6.
        let img = Tensor(shape: [1, 2, 3], scalars: [1, 2, 3, 4, 5, 6])
        let cases: [(Orientation, [Int], [Float])] = [
            (.upright, [1, 2, 3], [1, 2, 3, 4, 5, 6]),
            (.clockwise, [1, 3, 2], [4, 1, 5, 2, 6, 3]),
            (.counterClockwise, [1, 3, 2], [3, 6, 2, 5, 1, 4]),
            (.upsideDown, [1, 2, 3], [6, 5, 4, 3, 2, 1]),
            (.mirrored, [1, 2, 3], [3, 2, 1, 6, 5, 4]),
            (.flipped, [1, 2, 3], [4, 5, 6, 1, 2, 3]),
            (.transposed, [1, 3, 2], [1, 4, 2, 5, 3, 6]),
            (.antiTransposed, [1, 3, 2], [6, 3, 5, 2, 4, 1]),
        ]
        for (o, shape, values) in cases {
            let out = o.apply(img)
            #expect(out.shape == shape && out.scalars == values, "\(o): \(out.shape) \(out.scalars)")
        }
    }
}
