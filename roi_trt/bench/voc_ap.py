"""Pascal VOC average precision, computed as Padilla et al.'s toolkit (Object-Detection-Metrics, the
one the paper used) computes it; torch-free, Python 3.6.

- Detections of one class from all images are ranked by decreasing confidence; ties keep their input
  order (a stable sort, as the toolkit's `sorted(..., reverse=True)`).
- Each detection is compared with every ground-truth box of its image; the one with the highest IoU
  (the first on equal IoU) is its match. IoU >= the threshold and that box not yet taken: a true
  positive, and the box is taken; IoU >= threshold but the box already taken (a duplicate): a false
  positive; otherwise (or an image without ground truth) a false positive.
- IoU counts pixels inclusively, as the toolkit does: area = (x1 - x0 + 1) * (y1 - y0 + 1).
- AP is the all-point interpolated area under the precision/recall curve (VOC 2010+): precision made
  monotone from the right, summed over the recall steps.
- Edge cases: no detections -> AP 0 with ground truth present; no ground truth -> AP undefined (nan),
  every detection a false positive.
"""

from collections import namedtuple

Detection = namedtuple("Detection", "image score box")  # box: [x0, y0, x1, y1]
Result = namedtuple("Result", "ap tp fp positives precision recall")


def iou(a, b):
    """Intersection over union of two [x0, y0, x1, y1] boxes, pixels counted inclusively (the toolkit's rule)."""
    if a[0] > b[2] or b[0] > a[2] or a[3] < b[1] or a[1] > b[3]:
        return 0.0
    inter = (min(a[2], b[2]) - max(a[0], b[0]) + 1) * (min(a[3], b[3]) - max(a[1], b[1]) + 1)
    area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1)
    area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1)
    return inter / float(area_a + area_b - inter)


def match(detections, ground_truth, iou_threshold=0.5):
    """-> (ranked detections, list of 1/0 true-positive flags in that order).

    `detections`: iterable of Detection; `ground_truth`: {image: [boxes]}."""
    ranked = sorted(detections, key=lambda d: d.score, reverse=True)
    taken = {image: [False] * len(boxes) for image, boxes in ground_truth.items()}
    flags = []
    for d in ranked:
        boxes = ground_truth.get(d.image, [])
        best, best_j = 0.0, None
        for j, box in enumerate(boxes):
            value = iou(d.box, box)
            if value > best:  # the first of equal IoUs; no overlap never matches
                best, best_j = value, j
        if best_j is not None and best >= iou_threshold and not taken[d.image][best_j]:
            taken[d.image][best_j] = True
            flags.append(1)
        else:
            flags.append(0)
    return ranked, flags


def all_point_ap(recall, precision):
    """Area under the all-point interpolated precision/recall curve (the toolkit's CalculateAveragePrecision)."""
    mrec = [0.0] + list(recall) + [1.0]
    mpre = [0.0] + list(precision) + [0.0]
    for i in range(len(mpre) - 1, 0, -1):
        mpre[i - 1] = max(mpre[i - 1], mpre[i])
    return sum((mrec[i] - mrec[i - 1]) * mpre[i] for i in range(1, len(mrec)) if mrec[i] != mrec[i - 1])


def evaluate(detections, ground_truth, iou_threshold=0.5):
    """Detections of one class over a data set and its ground truth ({image: [boxes]}) -> Result with AP,
    total TP and FP, the number of ground-truth boxes, and the precision/recall curve."""
    positives = sum(len(boxes) for boxes in ground_truth.values())
    _, flags = match(detections, ground_truth, iou_threshold)
    precision, recall = [], []
    tp = fp = 0
    for flag in flags:
        tp += flag
        fp += 1 - flag
        precision.append(tp / float(tp + fp))
        recall.append(tp / float(positives) if positives else float("nan"))
    ap = all_point_ap(recall, precision) if positives else float("nan")
    return Result(ap, tp, fp, positives, precision, recall)
