"""The token CTC head's scores: scaled dot products with the class vectors, log-softmaxed over blank + classes."""

import torch

from speechllm.model.adaptor import CTCHead


def test_the_head_scores_frames_by_scaled_dot_products_with_blank_and_token_embeddings():
    torch.manual_seed(0)
    head = CTCHead(16)
    with torch.no_grad():
        head.blank.normal_()
        head.log_scale.fill_(0.7)
    audio, embeddings = torch.randn(2, 5, 16), torch.randn(9, 16)  # B, A, H; V, H
    classes = torch.cat([head.blank[None], embeddings])  # V+1, H
    expected = (torch.einsum("bah,vh->bav", audio, classes) * torch.tensor(0.7).exp()).log_softmax(-1)
    got = head(audio, embeddings)
    assert got.shape == (2, 5, 10)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    got[..., 1].sum().backward()  # the scale is trained
    assert head.log_scale.grad is not None and head.log_scale.grad.abs() > 0
